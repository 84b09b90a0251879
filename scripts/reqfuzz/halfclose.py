import socket, sys
port = int(sys.argv[1])
for name, req in [("GET", b"GET /hc1 HTTP/1.1\r\nHost: a\r\n\r\n"), ("POST-CL", b"POST /hc2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"), ("POST-chunked", b"POST /hc3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), ("POST-CL-3000", b"POST /hc4 HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n" + b"x"*3000)]:
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5)
    s.sendall(req); s.shutdown(socket.SHUT_WR)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d: break
            out += d
    except Exception as e:
        out += repr(e).encode()
    print(name, out[:60])
