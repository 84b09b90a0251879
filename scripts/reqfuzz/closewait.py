"""closewait.py PORT PID: runs each client behaviour, then counts sluice's connections on PORT left in CLOSE-WAIT."""
import socket, subprocess, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def closewait():
    out = subprocess.run(["ss", "-tnp", "state", "close-wait"], capture_output=True, text=True).stdout
    return sum(1 for l in out.splitlines() if f":{port} " in l and f"pid={pid}," in l)
def run(name, data, how, wait=0.3):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(2)
    s.sendall(data)
    time.sleep(0.1)
    if how == "half": s.shutdown(socket.SHUT_WR)
    if how == "read":
        try: s.recv(65536)
        except Exception: pass
    s.close()
    time.sleep(wait)
    print("%-40s close-wait now %d" % (name, closewait()))
body = b"x" * 100
cases = [
    ("GET answered, closed", b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "read"),
    ("half head, closed", b"GET /a HTTP/1.1\r\nHost: a\r\n", "close"),
    ("CL body cut, closed", b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + body[:10], "close"),
    ("chunked body cut, closed", b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "close"),
    ("CL body whole, half-closed", b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + body, "half"),
    ("GET, half-closed", b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "half"),
    ("expect, no body, closed", b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n", "close"),
    ("bad chunk size, closed", b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;x\r\nhello\r\n0\r\n\r\n", "close"),
]
for c in cases:
    for i in range(3): run(*c)
