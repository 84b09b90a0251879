"""The child for scripts/fuzz/output.ts: an HTTP app on $PORT whose process group prints
checkable lines on stdout and stderr, as the plan (JSON, argv[1]) says.

Every line is `@W<incarnation>.<writer>:<seq>:<payload length>:<crc32 of payload>|<payload>`
and a newline, so the fuzzer can tell whose it is, which one, and whether every byte arrived.
Writers run in forked processes of the group (sharing its stdout and stderr) and one in a
thread of this process. Each notes how many lines it has written whole in progress-<id>
(and "done" at its end): what sluice must have passed on, at least.
"""

import json
import os
import random
import signal
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

plan = json.load(open(sys.argv[1]))
case_dir = plan["dir"]
PIPE_BUF = 4096

# Which start of the child this is: the fuzzer restarts it with --restart and needs new writer ids.
incarnation = 1
while True:
    try:
        fd = os.open(os.path.join(case_dir, f"incarnation-{incarnation}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        break
    except FileExistsError:
        incarnation += 1


ASCII = bytes(b"abcdefghijklmnopqrstuvwxyz0123456789 "[i % 37] for i in range(256))
CR_AND_LETTERS = bytes(b"ab\r"[i % 3] for i in range(256))


def payload(rng, length, kind):
    # Random bytes mapped through a table: fast enough to fill sluice's output queue.
    if kind == "ascii":
        return rng.randbytes(length).translate(ASCII)
    if kind == "utf8":
        text = "".join(rng.choice(["a", "\u00e9", "\u20ac", "\U0001f600", "\u2028", "\t", "\x1b[31m"]) for _ in range(min(length, 4096) // 3 + 1))
        return (text.encode() * (length // 4096 + 1))[:length]  # may end inside a character: invalid UTF-8 at the end, on purpose
    if kind == "crlf":
        body = b"x" * max(0, length - 1)
        return body + b"\r" if length > 0 else b""
    if kind == "cr":
        return rng.randbytes(length).translate(CR_AND_LETTERS)
    # binary: every byte but the newline, NUL and invalid UTF-8 included
    return rng.randbytes(length).replace(b"\n", b"\x0b")


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Writer:
    def __init__(self, spec):
        self.spec = spec
        self.wid = f"{incarnation}.{spec['index']}"
        self.fd = spec["fd"]
        self.rng = random.Random(spec["seed"] * 10 + incarnation)
        self.progress = os.open(os.path.join(case_dir, f"progress-{self.wid}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.written = 0
        self.noted_at = 0.0
        self.stop = False

    def note(self, done=False):
        text = f"{self.written}{' done' if done else ''}".encode().ljust(24)
        os.pwrite(self.progress, text, 0)
        self.noted_at = time.monotonic()

    def line(self, seq, last):
        spec, rng = self.spec, self.rng
        max_len = spec["maxLen"]
        length = rng.choice([0, 1, rng.randrange(max_len + 1), rng.randrange(min(max_len, 100) + 1), max_len])
        body = payload(rng, length, rng.choice(spec["kinds"]))
        head = b"@W%s:%d:%d:%08x|" % (self.wid.encode(), seq, len(body), zlib.crc32(body))
        ending = b"" if last and not spec["finalNewline"] else b"\n"
        return head + body + ending

    def pause(self):
        if self.rng.random() < self.spec["pauseChance"]:
            time.sleep(self.rng.random() * self.spec["maxPauseMs"] / 1000)

    def run(self):
        spec = self.spec
        time.sleep(spec["startDelayMs"] / 1000)
        count = spec["lines"]
        seq = 0
        while seq < count and not self.stop:
            style = spec["style"]
            if style == "batch":
                # Several whole lines in one write; on a shared stream at most PIPE_BUF, so
                # the write is atomic and no other writer's bytes land inside.
                batch, lines = b"", 0
                while seq + lines < count and lines < 64:
                    line = self.line(seq + lines, seq + lines == count - 1)
                    if spec["shared"] and len(batch) + len(line) > PIPE_BUF:
                        write_all(self.fd, batch)
                        batch, seq, lines = b"", seq + lines, 0
                        self.written = seq
                    batch += line
                    lines += 1
                    if self.rng.random() < 0.3:
                        break
                write_all(self.fd, batch)
                seq += lines
                self.written = seq
            elif style == "pieces":
                data = self.line(seq, seq == count - 1)
                cuts = sorted(self.rng.randrange(len(data) + 1) for _ in range(self.rng.randrange(4)))
                start = 0
                for cut in cuts + [len(data)]:
                    write_all(self.fd, data[start:cut])
                    start = cut
                    self.pause()
                seq += 1
                self.written = seq
            else:  # whole: one write per line (atomic when it fits PIPE_BUF)
                write_all(self.fd, self.line(seq, seq == count - 1))
                seq += 1
                self.written = seq
            self.pause()
            if time.monotonic() - self.noted_at > 0.02:
                self.note()
        self.note(done=not self.stop)


def run_forked(spec):
    pid = os.fork()
    if pid != 0:
        return pid
    writer = Writer(spec)
    if spec["graceful"]:
        def stop(*_):
            writer.stop = True
        signal.signal(signal.SIGTERM, stop)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        writer.run()
    finally:
        os._exit(0)


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client cut off at the stop: its traceback would be stderr lines the fuzzer cannot check


signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
forked = [run_forked(spec) for spec in plan["writers"] if not spec["inMain"]]
server = Server(("127.0.0.1", int(os.environ["PORT"])), App)
threading.Thread(target=server.serve_forever, daemon=True).start()
threads = []
for spec in plan["writers"]:
    if spec["inMain"]:
        thread = threading.Thread(target=Writer(spec).run, daemon=True)
        thread.start()
        threads.append(thread)

if incarnation == 1 and plan["selfExit"]:
    for pid in forked:
        os.waitpid(pid, 0)
    for thread in threads:
        thread.join()
    os._exit(plan["exitCode"])
while True:
    time.sleep(3600)
