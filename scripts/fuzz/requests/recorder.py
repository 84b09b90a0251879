"""A raw HTTP/1.1 app for the request fuzzer: parses every request strictly (RFC 9112) and
records, per connection, each request it parsed and anything it could not, as JSON lines in
$RECORD_FILE. Answers each request 200 with 'ok'; a framing error is recorded, answered 400
and the connection closed."""
import json, os, re, socket, threading, itertools

RECORD = open(os.environ["RECORD_FILE"], "a", buffering=1)
LOCK = threading.Lock()
CONNS = itertools.count(1)
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
TARGET = re.compile(rb"^[!-~]+$")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

def record(obj):
    with LOCK:
        RECORD.write(json.dumps(obj) + "\n")

class Bad(Exception):
    pass

class Conn:
    def __init__(self, sock):
        self.sock, self.buf, self.id, self.eof = sock, b"", next(CONNS), False
    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True
    def line(self, limit=70000):
        while b"\n" not in self.buf:
            if len(self.buf) > limit: raise Bad("line too long")
            if not self.fill(): raise EOFError
        i = self.buf.index(b"\n")
        raw, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        if not raw.endswith(b"\r\n"): raise Bad("bare LF: %r" % raw[-80:])
        body = raw[:-2]
        if b"\r" in body: raise Bad("bare CR: %r" % raw[:80])
        return body
    def exact(self, n):
        while len(self.buf) < n:
            if not self.fill(): raise EOFError
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

def serve(sock):
    c = Conn(sock)
    n = 0
    with sock:
        while True:
            head_raw = b""
            try:
                if not c.buf and not c.fill():
                    return
                reqline = c.line()
                head_raw = reqline + b"\r\n"
                parts = reqline.split(b" ")
                if len(parts) != 3 or not TOKEN.match(parts[0]) or not TARGET.match(parts[1]) or parts[2] != b"HTTP/1.1":
                    raise Bad("bad request line %r" % reqline[:200])
                headers = []
                while True:
                    ln = c.line()
                    head_raw += ln + b"\r\n"
                    if ln == b"": break
                    if b":" not in ln: raise Bad("header without colon %r" % ln[:200])
                    name, value = ln.split(b":", 1)
                    if not TOKEN.match(name): raise Bad("bad header name %r" % ln[:200])
                    value = value.strip(b" \t")
                    if BAD_VALUE.search(value): raise Bad("control in value %r" % ln[:200])
                    headers.append((name.decode("latin1"), value.decode("latin1")))
                lower = [(k.lower(), v) for k, v in headers]
                early = b"/early" in parts[1]
                if early:
                    # Answers before reading the body, then reads it (as a server must, to
                    # keep the connection): sluice sees its answer before its body is all sent.
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + (b"" if parts[0] == b"HEAD" else b"early"))
                cls = [v for k, v in lower if k == "content-length"]
                tes = [v for k, v in lower if k == "transfer-encoding"]
                hosts = [v for k, v in lower if k == "host"]
                notes = []
                if len(hosts) != 1: notes.append("host count %d" % len(hosts))
                if cls and tes: raise Bad("both content-length and transfer-encoding")
                if len(cls) > 1: raise Bad("several content-length %r" % cls)
                if len(tes) > 1: raise Bad("several transfer-encoding %r" % tes)
                body = b""; trailers = []; exts = []
                if tes:
                    if tes[0] != "chunked": raise Bad("transfer-encoding %r" % tes[0])
                    while True:
                        sl = c.line()
                        size, _, ext = sl.partition(b";")
                        if ext: exts.append(ext.decode("latin1"))
                        if not re.match(rb"^[0-9a-fA-F]{1,8}$", size): raise Bad("bad chunk size %r" % sl[:80])
                        size = int(size, 16)
                        if size == 0: break
                        body += c.exact(size)
                        if c.exact(2) != b"\r\n": raise Bad("chunk not followed by CRLF")
                    while True:
                        tl = c.line()
                        if tl == b"": break
                        trailers.append(tl.decode("latin1"))
                elif cls:
                    if not re.match(r"^\d{1,12}$", cls[0]): raise Bad("bad content-length %r" % cls[0])
                    body = c.exact(int(cls[0]))
                n += 1
                c.last = parts[1][:60].decode("latin1")
                record({"conn": c.id, "n": n, "method": parts[0].decode("latin1"), "target": parts[1].decode("latin1"),
                        "headers": headers, "body_len": len(body), "body": body[:200].decode("latin1"),
                        "framing": "chunked" if tes else ("length" if cls else "none"), "trailers": trailers, "exts": exts,
                        "notes": notes})
                if early: continue
                close = any(k == "connection" and "close" in v.lower() for k, v in lower)
                rid = next((v for k, v in lower if k == "x-request-id"), "")
                payload = ("ok %d.%d %s" % (c.id, n, rid)).encode("latin1", "replace")
                extra = b"Content-Type: text/plain\r\n"
                if b"/cache" in parts[1]:
                    # A public, compressible page with validators: the cache, compression and
                    # conditional and range requests all apply to it.
                    payload = b"<p>cacheable page</p>\n" * 100
                    extra = (b"Content-Type: text/html\r\nCache-Control: public, max-age=60\r\nETag: \"v1\"\r\n"
                             b"Last-Modified: Sun, 06 Dec 2026 10:00:00 GMT\r\nVary: Accept-Encoding\r\n")
                sock.sendall(b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n%s\r\n" % (extra, len(payload), b"Connection: close\r\n" if close else b"") + (b"" if parts[0] == b"HEAD" else payload))
                if close: return
            except EOFError:
                if c.buf or head_raw:
                    record({"conn": c.id, "error": "eof mid-request", "rest": (head_raw + c.buf)[:400].decode("latin1")})
                return
            except Bad as e:
                record({"conn": c.id, "error": str(e), "head": head_raw[:400].decode("latin1"), "rest": c.buf[:400].decode("latin1")})
                try: sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError: pass
                return
            except OSError as e:
                record({"conn": c.id, "error": "oserror %s" % e, "after": n, "last": getattr(c, "last", None), "head": head_raw[:200].decode("latin1"), "buffered": len(c.buf)})
                return

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(os.environ["PORT"])))
listener.listen(128)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
