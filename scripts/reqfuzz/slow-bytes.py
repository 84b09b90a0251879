"""slow-bytes.py PORT: sends requests one byte every 20 ms (chunked and with Content-Length, two on one connection) and prints the answers."""
import socket, sys, time
port = int(sys.argv[1])
reqs = [b"POST /slow1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\n\r\n",
        b"POST /slow2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nConnection: close\r\n\r\nwxyz"]
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
for r in reqs:
    for b in r:
        s.send(bytes([b])); time.sleep(0.02)
    time.sleep(0.3)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except Exception as e: out += repr(e).encode()
print([l for l in out.split(b"\r\n") if l.startswith(b"HTTP/") or l.startswith(b"ok")])
