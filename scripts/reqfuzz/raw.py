"""raw.py PORT: sends stdin's bytes (Python-escaped string in argv[2]) to PORT, prints the answer."""
import socket, sys, time, ast
port = int(sys.argv[1]); data = ast.literal_eval("b'''" + sys.argv[2] + "'''") if len(sys.argv) > 2 else sys.stdin.buffer.read()
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(3)
s.sendall(data)
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except socket.timeout:
    out += b"<<timeout>>"
print(out.decode("latin1"))
