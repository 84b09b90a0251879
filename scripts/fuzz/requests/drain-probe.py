"""drain-probe.py PORT SLUICE_PID: opens connections in odd states, sends SIGTERM, reports how each ended and how long sluice took to exit."""
import os, signal, socket, sys, time, threading
port, pid = int(sys.argv[1]), int(sys.argv[2])
states = {
    "half-head": b"GET /d1 HTTP/1.1\r\nHost: a\r\nX-A: 1",
    "partial-cl-body": b"POST /d2 HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhello",
    "partial-chunked": b"POST /d3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "huge-chunk": b"POST /d4 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\nhello",
    "expect-no-body": b"POST /d5 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    "idle-after-one": b"GET /d6 HTTP/1.1\r\nHost: a\r\n\r\n",
    "half-closed-get": b"GET /d7 HTTP/1.1\r\nHost: a\r\n\r\n",
}
results = {}
start = 0.0
def run(name, data):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(40)
    s.sendall(data)
    if name == "half-closed-get": s.shutdown(socket.SHUT_WR)
    out = b""; t0 = time.time()
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
        how = "eof"
    except ConnectionResetError: how = "reset"
    except socket.timeout: how = "timeout"
    results[name] = (how, round(time.time() - start, 2) if start else None, out[:40])
threads = []
for name, data in states.items():
    t = threading.Thread(target=run, args=(name, data)); t.start(); threads.append(t)
time.sleep(1.0)
start = time.time()
os.kill(pid, signal.SIGTERM)
while True:
    try: os.kill(pid, 0)
    except ProcessLookupError: break
    if time.time() - start > 60: print("sluice still running after 60 s"); break
    time.sleep(0.05)
print("sluice exited after %.2f s" % (time.time() - start))
for t in threads: t.join(45)
for k, v in results.items(): print(k, v)
