"""The app for scripts/fuzz/responses: answers /<case>/<token>[/<arg>] with odd bytes chosen by case (see
answer()), /raw/<token>/<hex> with exactly those bytes (headers x-cuts, x-close, x-dirty), and
/early/<token>/<drain|unread|close|rst> with a 401 before reading the body. Responses carry
X-Token and X-Conn (the connection's number). The app marks a connection dirty when what it
sent was not one well-framed keep-alive response; a request that arrives on a dirty connection
is answered normally and listed by /state/x (ask the app's port directly). Idle connections
close after APP_IDLE seconds (default 2)."""
import os, socket, threading, time, random, sys, json

EVIL = b"HTTP/1.1 200 OK\r\nX-Token: EVIL\r\nX-Conn: EVIL\r\nContent-Length: 4\r\n\r\nEVIL"
lock = threading.Lock()
conn_ids = [0]
dirty = {}     # conn id -> reason
events = []    # reused-dirty records
closes = []    # connections the app closed without saying so (idle, x-close), with what was unread
LOG = open(os.environ.get("APP_LOG", "/tmp/sluice-fuzz-responses-app.log"), "a", buffering=1)

def log(*a):
    LOG.write(" ".join(str(x) for x in a) + "\n")

def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    return head, buf

def read_body(conn, buf, headers):
    te = headers.get("transfer-encoding", "")
    if "chunked" in te.lower():
        out = b""
        while True:
            while b"\r\n" not in buf:
                d = conn.recv(65536)
                if not d: return out, buf
                buf += d
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d: return out, buf
                    buf += d
                # trailers: until empty line
                while True:
                    line, buf = buf.split(b"\r\n", 1)
                    if line == b"": break
                    while b"\r\n" not in buf:
                        buf += conn.recv(65536)
                return out, buf
            while len(buf) < size + 2:
                d = conn.recv(65536)
                if not d: return out, buf
                buf += d
            out += buf[:size]; buf = buf[size + 2:]
    n = int(headers.get("content-length", "0") or 0)
    while len(buf) < n:
        d = conn.recv(65536)
        if not d: break
        buf += d
    return buf[:n], buf[n:]

def resp(status, token, cid, body=b"", extra_headers=b"", framing="cl"):
    h = b"HTTP/1.1 %s\r\nX-Token: %s\r\nX-Conn: %d\r\n" % (status, token, cid) + extra_headers
    if framing == "cl":
        h += b"Content-Length: %d\r\n" % len(body)
    elif framing == "chunked":
        h += b"Transfer-Encoding: chunked\r\n"
        body = (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    return h + b"\r\n" + body

def send_split(conn, data, parts):
    """parts: list of cut positions; sends pieces with short pauses."""
    last = 0
    for p in sorted(set(parts)):
        if 0 < p < len(data):
            conn.sendall(data[last:p]); time.sleep(0.005); last = p
    conn.sendall(data[last:])

def answer(conn, cid, method, path, headers, body_left):
    """Returns (keep_going, dirty_reason or None, need_body_read)."""
    parts = path.split("/")
    case = parts[1] if len(parts) > 1 else ""
    token = (parts[2] if len(parts) > 2 else "none").encode()
    arg = parts[3] if len(parts) > 3 else ""
    body = b"tok=" + token
    R = lambda *a, **k: resp(*a, **k)
    ok = R(b"200 OK", token, cid, body)
    s = conn.sendall
    if case == "ok":
        s(ok if method != "HEAD" else R(b"200 OK", token, cid, b"", b"Content-Length: %d\r\n" % len(body), framing="none"))
        return True, None
    if case == "chunked":
        s(R(b"200 OK", token, cid, body, framing="chunked")); return True, None
    if case == "cl-extra":
        s(ok + EVIL); return True, "extra after CL body"
    if case == "cl-extra-late":
        s(ok); time.sleep(0.03); s(EVIL); return True, "late extra (inherent)"
    if case in ("204-body", "304-body", "204-cl", "304-cl", "204-te", "304-te", "204-cl0"):
        st = b"204 No Content" if case.startswith("204") else b"304 Not Modified"
        xh = {"body": b"", "cl": b"Content-Length: %d\r\n" % len(EVIL), "te": b"Transfer-Encoding: chunked\r\n", "cl0": b"Content-Length: 0\r\n"}[case[4:]]
        if case == "204-cl0":
            s(R(st, token, cid, b"", xh, framing="none")); return True, None
        s(R(st, token, cid, b"", xh, framing="none") + EVIL); return True, "body on " + case
    if case == "head-body":
        s(R(b"200 OK", token, cid, body) + EVIL); return True, "body on HEAD"
    if case == "head-te":
        s(R(b"200 OK", token, cid, b"", b"Transfer-Encoding: chunked\r\n", framing="none")); return True, None
    if case == "1xx":
        s(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nX-Token: EVIL\r\n\r\n" + ok); return True, None
    if case == "1xx-split":
        send_split(conn, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: b\r\n\r\n" + ok, [int(x) for x in arg.split(",") if x]); return True, None
    if case == "1xx-body":
        s(b"HTTP/1.1 100 Continue\r\nContent-Length: %d\r\n\r\n" % len(EVIL) + EVIL + ok); return True, "1xx with body"
    if case == "1xx-many":
        s(b"HTTP/1.1 100 Continue\r\n\r\n" * 200 + ok); return True, None
    if case == "101":
        s(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Token: " + token + b"\r\n\r\n" + EVIL); return True, "101"
    if case == "cl-te":
        # TE wins: chunked body ends early; the CL would cover EVIL too.
        cb = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (cid, len(cb) + len(EVIL)) + cb + EVIL)
        return True, "CL with TE"
    if case == "te-cl":
        cb = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" % cid + cb)
        return True, "TE with CL"
    if case.startswith("cl-multi"):
        n = len(body)
        v = {"cl-multi-eq": [b"%d" % n, b"%d" % n], "cl-multi-diff": [b"%d" % n, b"%d" % (n + len(EVIL))],
             "cl-multi-list": [b"%d, %d" % (n, n)], "cl-multi-list-diff": [b"%d, %d" % (n, n + 4)],
             "cl-multi-listnosp": [b"%d,%d" % (n, n)], "cl-multi-empty": [b"%d," % n], "cl-multi-plus": [b"+%d" % n],
             "cl-multi-zeros": [b"000%d" % n], "cl-multi-space": [b" %d " % n], "cl-multi-tab": [b"\t%d" % n],
             "cl-multi-eq3": [b"%d" % n, b"%d" % n, b"%d" % n], "cl-multi-big": [b"99999999999999999999"],
             "cl-multi-neg": [b"-1"], "cl-multi-hex": [b"0x%x" % n], "cl-multi-dot": [b"%d.0" % n],
             "cl-multi-emptyval": [b""], "cl-multi-listempty": [b"%d, , %d" % (n, n)]}[case]
        hs = b"".join(b"Content-Length: " + x + b"\r\n" for x in v)
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\n" % cid + hs + b"\r\n" + body + EVIL)
        return True, "multi-cl " + case
    if case == "chunked-trailers":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n" % cid +
          b"%x;ext=1;q=\"a b\"\r\n" % len(body) + body + b"\r\n0;last=1\r\nX-T: 1\r\nX-Token: EVIL\r\n\r\n"); return True, None
    if case == "chunked-upper":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: CHUNKED\r\n\r\n" % cid +
          b"%X\r\n" % len(body) + body + b"\r\n0000\r\n\r\n"); return True, None
    if case == "chunked-te2":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"); return True, "double TE"
    if case == "chunked-lf":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"%x\n" % len(body) + body + b"\n0\n\n" + EVIL); return True, "bare LF chunks"
    if case == "chunked-extra":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n" + EVIL); return True, "extra after chunked"
    if case == "chunked-ws":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"%x \r\n" % len(body) + body + b"\r\n0 ;x\r\n\r\n"); return True, None
    if case == "chunked-bigsize":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"ffffffffffffffffffff\r\n" + body + EVIL); return True, "huge chunk size"
    if case == "chunked-neg":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"-1\r\n" + body + EVIL); return True, "neg chunk size"
    if case == "chunked-short":   # chunk data shorter than size, EVIL fills it
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % cid +
          b"%x\r\n" % (len(body) + 10) + body + b"\r\n0\r\n\r\n" + EVIL); return True, "short chunk"
    if case == "close-delim":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\n\r\n" % cid + body); time.sleep(0.05); return False, "close-delimited"
    if case == "close-delim-ka":
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nConnection: keep-alive\r\n\r\n" % cid + body + EVIL); time.sleep(0.05); return False, "close-delimited"
    if case.startswith("conn-close"):
        v = {"conn-close": b"close", "conn-close-upper": b"CLOSE", "conn-close-mixed": b"Keep-Alive, Close", "conn-close-nosp": b"keep-alive,close",
             "conn-close-tab": b"\tclose\t"}[case]
        name = {"conn-close-upper": b"CONNECTION"}.get(case, b"Connection")
        s(b"HTTP/1.1 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\n" % cid + name + b": " + v + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return (arg != "close"), "said Connection: close"
    if case == "http10":
        s(b"HTTP/1.0 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nContent-Length: %d\r\n\r\n" % (cid, len(body)) + body); return True, "HTTP/1.0 without keep-alive"
    if case == "http10-ka":
        s(b"HTTP/1.0 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n" % (cid, len(body)) + body); return True, None
    if case == "http10-close":
        s(b"HTTP/1.0 200 OK\r\nX-Token: " + token + b"\r\nX-Conn: %d\r\n\r\n" % cid + body); return False, "1.0 close-delimited"
    if case == "unsolicited-idle":
        s(ok); time.sleep(0.05); s(EVIL); return True, "unsolicited while idle"
    if case == "split":
        send_split(conn, resp(b"200 OK", token, cid, body, framing=arg.split(":")[0] or "cl"), [int(x) for x in arg.split(":")[1].split(",") if x] if ":" in arg else []); return True, None
    if case == "raw":  # arg: hex of bytes to send with TOKEN placeholders
        data = bytes.fromhex(arg).replace(b"CNID", b"%04d" % cid)
        d = headers.get("x-dirty", "1") == "1"
        cuts = [int(x) for x in headers.get("x-cuts", "").split(",") if x]
        send_split(conn, data, cuts)
        if headers.get("x-close") == "1":
            time.sleep(0.02); return False, "closed"
        return True, ("fuzzed" if d else None)
    s(R(b"404 Not Found", token, cid, b"nope")); return True, None

def unread_close(conn, cid, why, buf):
    """Records a close the app makes without saying so (idle, x-close), with the request lines
    that had come and were unread: a client that sent one just then gets a reset or nothing."""
    try:
        conn.setblocking(False)
        buf += conn.recv(65536, socket.MSG_PEEK)
    except (BlockingIOError, OSError):
        pass
    unread = [l.decode("latin1") for l in buf.split(b"\r\n") if l.split(b" ")[-1:] == [b"HTTP/1.1"]]
    closes.append({"t": time.time(), "conn": cid, "why": why, "unread": unread})

def serve(conn):
    with lock:
        conn_ids[0] += 1; cid = conn_ids[0]
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(float(os.environ.get("APP_IDLE", "2")))
    buf = b""
    try:
        with conn:
            try:
                while True:
                    head, buf = read_head(conn, buf)
                    if head is None: return
                    lines = head.decode("latin1").split("\r\n")
                    method, path, _ = lines[0].split(" ", 2)
                    headers = {}
                    for l in lines[1:]:
                        k, _, v = l.partition(":"); headers[k.strip().lower()] = v.strip()
                    if cid in dirty:
                        log("REUSED-DIRTY", cid, dirty[cid], "->", method, path)
                        events.append({"conn": cid, "why": dirty[cid], "next": path})
                    if path.startswith("/early"):
                        # answer before reading the body: arg says what then
                        parts = path.split("/"); token = parts[2].encode(); arg = parts[3] if len(parts) > 3 else ""
                        conn.sendall(resp(b"401 Unauthorized", token, cid, b"tok=" + token))
                        if arg == "close":
                            time.sleep(0.05); return
                        if arg == "drain":
                            _, buf = read_body(conn, buf, headers); dirty[cid] = "early response"; continue
                        if arg == "rst":
                            import struct
                            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); return
                        dirty[cid] = "early, body unread"; continue
                    if path.startswith("/state"):
                        b = json.dumps({"events": events, "conns": conn_ids[0], "closes": closes}).encode()
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b) + b); continue
                    if path.startswith("/slowbody"):
                        # reads the body fully, then answers
                        _, buf = read_body(conn, buf, headers)
                    else:
                        _, buf = read_body(conn, buf, headers)
                    go, why = answer(conn, cid, method, path, headers, buf)
                    if why: dirty[cid] = why
                    if not go:
                        unread_close(conn, cid, why, buf)
                        return
            except socket.timeout:
                unread_close(conn, cid, "idle", buf)
    except Exception as e:
        log("EXC", cid, repr(e))

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(os.environ["PORT"])))
listener.listen(128)
while True:
    c = listener.accept()[0]
    threading.Thread(target=serve, args=(c,), daemon=True).start()
