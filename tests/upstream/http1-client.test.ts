/** @module Http1Client on real sockets: Bun.serve and raw Bun.listen upstreams, through the Bun adapter's connectTcp. */

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { bunConnectTcp } from "../../src/runtime/socket-bun.ts";
import { Http1Client, type UpstreamInit } from "../../src/upstream/http1-client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The arguments of Http1Client.fetch, written the way a Request is. */
function req(url: string, init: RequestInit = {}): [string, UpstreamInit] {
  const body = (init.body ?? null) as ReadableStream<Uint8Array> | null;
  return [url, { method: init.method ?? "GET", headers: new Headers(init.headers), body, signal: init.signal ?? undefined }];
}

/** A raw TCP upstream: `respond` gets each request head (body-less requests only) and writes what it likes. */
function rawServer(respond: (head: string, socket: Socket<{ buffer: string; requests: number }>, nth: number) => void) {
  const heads: string[] = [];
  const counts = { opened: 0, closed: 0 };
  let onClose = () => {};
  const listener = Bun.listen<{ buffer: string; requests: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (socket) => void (counts.opened++, (socket.data = { buffer: "", requests: 0 })),
      data(socket, data) {
        socket.data.buffer += Buffer.from(data).toString("latin1");
        for (let end; (end = socket.data.buffer.indexOf("\r\n\r\n")) !== -1; ) {
          const head = socket.data.buffer.slice(0, end);
          socket.data.buffer = socket.data.buffer.slice(end + 4);
          heads.push(head);
          respond(head, socket, ++socket.data.requests);
        }
      },
      close: () => void (counts.closed++, onClose()),
    },
  });
  cleanups.push(() => listener.stop(true));
  const closedOnce = () => new Promise<void>((resolve) => (onClose = resolve));
  return { url: `http://127.0.0.1:${listener.port}`, port: listener.port, heads, counts, closedOnce };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`Timed out: ${what}`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function readN(reader: ReadableStreamDefaultReader<Uint8Array>, n: number): Promise<string> {
  let text = "";
  while (text.length < n) {
    const { done, value } = await withTimeout(reader.read(), 3000, `reading ${n} bytes`);
    if (done) break;
    text += decoder.decode(value);
  }
  return text;
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function client(options: { idleTimeoutMs?: number; maxHeaderBytes?: number } = {}) {
  let opened = 0;
  const c = new Http1Client({ connect: (h, p, events) => bunConnectTcp(h, p, events).then((t) => (opened++, t)), ...options });
  cleanups.push(() => c.close());
  return Object.assign(c, { opened: () => opened });
}

// One Bun.serve upstream for the routes that a real HTTP server expresses best.
const gzipped = Bun.gzipSync(encoder.encode("hello gzip ".repeat(500)));
const portsByTag = new Map<string, Set<number>>();
let slowGate = Promise.withResolvers<void>();
let foreverAborted = Promise.withResolvers<void>();
let upstream: ReturnType<typeof Bun.serve>;
let base = "";

beforeAll(() => {
  upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req, server) {
      const url = new URL(req.url);
      const tag = url.searchParams.get("tag");
      if (tag) portsByTag.set(tag, (portsByTag.get(tag) ?? new Set()).add(server.requestIP(req)!.port));
      switch (url.pathname) {
        case "/hello":
          return new Response("hello world", { headers: { "x-up": "1" } });
        case "/echo":
          return new Response(req.body, {
            headers: { "x-got-length": req.headers.get("content-length") ?? "none", "x-got-te": req.headers.get("transfer-encoding") ?? "none" },
          });
        case "/gzip":
          return new Response(gzipped, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
        case "/stream":
          return new Response(
            new ReadableStream({
              async start(c) {
                for (const part of ["one,", "two,", "three"]) {
                  c.enqueue(encoder.encode(part));
                  await Bun.sleep(5);
                }
                c.close();
              },
            }),
          );
        case "/slow":
          return new Response(
            new ReadableStream({
              async start(c) {
                c.enqueue(encoder.encode("first"));
                await slowGate.promise;
                c.enqueue(encoder.encode("rest"));
                c.close();
              },
            }),
          );
        case "/forever": {
          req.signal.addEventListener("abort", () => foreverAborted.resolve());
          let timer: ReturnType<typeof setInterval>;
          return new Response(
            new ReadableStream({
              start: (c) => void (timer = setInterval(() => c.enqueue(encoder.encode("tick")), 10)),
              cancel: () => clearInterval(timer),
            }),
          );
        }
        case "/eleven":
          return new Response("0123456789a");
        case "/204":
          return new Response(null, { status: 204 });
        case "/304":
          return new Response(null, { status: 304, headers: { etag: '"x"' } });
      }
      return new Response("not found", { status: 404 });
    },
  });
  base = `http://127.0.0.1:${upstream.port}`;
});
afterAll(() => upstream.stop(true));

describe("Http1Client against Bun.serve", () => {
  test("GET returns status, headers and body", async () => {
    const res = await client().fetch(...req(`${base}/hello`));
    expect(res.status).toBe(200);
    expect(res.headers.get("x-up")).toBe("1");
    expect(res.headers.get("content-length")).toBe("11");
    expect(await res.text()).toBe("hello world");
  });

  test("POST streams the request body and the response body at the same time", async () => {
    let input!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (input = c) });
    input.enqueue(encoder.encode("one;"));
    const res = await withTimeout(client().fetch(...req(`${base}/echo`, { method: "POST", body, duplex: "half" } as RequestInit)), 3000, "response head");
    expect(res.headers.get("x-got-te")).toBe("chunked");
    const reader = res.body!.getReader();
    expect(await readN(reader, 4)).toBe("one;"); // echoed while the request body is still open
    input.enqueue(encoder.encode("two;"));
    expect(await readN(reader, 4)).toBe("two;");
    input.close();
    expect((await reader.read()).done).toBe(true);
  });

  test("a request content-length is kept and the body streamed with it", async () => {
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(encoder.encode("abc"));
        await Bun.sleep(5);
        c.enqueue(encoder.encode("def"));
        c.close();
      },
    });
    const res = await client().fetch(...req(`${base}/echo`, { method: "POST", body, headers: { "content-length": "6" } }));
    expect(res.headers.get("x-got-length")).toBe("6");
    expect(res.headers.get("x-got-te")).toBe("none");
    expect(await res.text()).toBe("abcdef");
  });

  test("a chunked response is de-chunked and transfer-encoding dropped", async () => {
    const res = await client().fetch(...req(`${base}/stream`));
    expect(res.headers.has("transfer-encoding")).toBe(false);
    expect(await res.text()).toBe("one,two,three");
  });

  test("a gzip response passes through byte-exact with content-encoding and content-length", async () => {
    const res = await client().fetch(...req(`${base}/gzip`, { headers: { "accept-encoding": "gzip" } }));
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(res.headers.get("content-length")).toBe(String(gzipped.length));
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(gzipped);
  });

  // Not after a HEAD: an app that answers it as GET may write the body after the head, and the
  // next request on the connection would take those bytes for its answer.
  test("HEAD, 204 and 304 have no body; the connection is reused after 204 and 304, not after HEAD", async () => {
    const c = client();
    const head = await c.fetch(...req(`${base}/eleven?tag=bodyless`, { method: "HEAD" }));
    expect(head.body).toBeNull();
    expect(head.headers.get("content-length")).toBe("11");
    const noContent = await c.fetch(...req(`${base}/204?tag=bodyless`));
    expect([noContent.status, noContent.body]).toEqual([204, null]);
    const notModified = await c.fetch(...req(`${base}/304?tag=bodyless`));
    expect([notModified.status, notModified.body, notModified.headers.get("etag")]).toEqual([304, null, '"x"']);
    expect(await (await c.fetch(...req(`${base}/eleven?tag=bodyless`))).text()).toBe("0123456789a");
    expect(portsByTag.get("bodyless")?.size).toBe(2); // the HEAD's, then one for the rest
    expect(c.opened()).toBe(2);
  });

  test("keep-alive: sequential requests reuse one connection; connection: close does not", async () => {
    const c = client();
    for (let i = 0; i < 3; i++) expect(await (await c.fetch(...req(`${base}/hello?tag=reuse`))).text()).toBe("hello world");
    expect(portsByTag.get("reuse")?.size).toBe(1);
    for (let i = 0; i < 2; i++) await (await c.fetch(...req(`${base}/hello?tag=close`, { headers: { connection: "close" } }))).text();
    expect(portsByTag.get("close")?.size).toBe(2);
  });

  test("the first bytes of a slow body arrive before the rest is sent", async () => {
    slowGate = Promise.withResolvers<void>();
    const res = await client().fetch(...req(`${base}/slow`));
    const reader = res.body!.getReader();
    expect(await readN(reader, 5)).toBe("first"); // would time out if the client waited for more
    slowGate.resolve();
    expect(await readN(reader, 4)).toBe("rest");
  });

  test("aborting mid-body errors the body with the reason and closes the connection", async () => {
    foreverAborted = Promise.withResolvers<void>();
    const c = client();
    const controller = new AbortController();
    const res = await c.fetch(...req(`${base}/forever?tag=abort`, { signal: controller.signal }));
    const reader = res.body!.getReader();
    await reader.read();
    const reason = new Error("client went away");
    controller.abort(reason);
    expect(await reader.read().catch((e) => e)).toBe(reason);
    await withTimeout(foreverAborted.promise, 3000, "upstream to see the connection close");
    await (await c.fetch(...req(`${base}/hello?tag=abort`))).text();
    expect(portsByTag.get("abort")?.size).toBe(2); // the aborted connection never went back to the pool
  });

  test("cancelling the body closes the connection", async () => {
    foreverAborted = Promise.withResolvers<void>();
    const res = await client().fetch(...req(`${base}/forever`));
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel();
    await withTimeout(foreverAborted.promise, 3000, "upstream to see the connection close");
  });

  test("an already aborted signal rejects with its reason", async () => {
    const reason = new Error("too late");
    expect(await client().fetch(...req(`${base}/hello`, { signal: AbortSignal.abort(reason) })).catch((e) => e)).toBe(reason);
  });

  test("a refused connection rejects with a TypeError carrying the cause", async () => {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = listener.port;
    listener.stop(true);
    const error = await client().fetch(...req(`http://127.0.0.1:${port}/`)).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.cause).toBeDefined();
  });

  test("https: URLs are refused", async () => {
    expect(client().fetch(...req("https://127.0.0.1/"))).rejects.toThrow(TypeError);
  });
});

describe("Http1Client against a raw TCP upstream", () => {
  const ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

  test("closeIdle ends the idle connections to one origin cleanly (FIN, no reset); the next request opens a new one", async () => {
    const seen = { fins: 0, resets: 0 };
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data: (socket) => void socket.write(ok),
        end: (socket) => void (seen.fins++, socket.end()),
        error: () => void seen.resets++,
        close: (_socket, error) => void (error && seen.resets++),
      },
    });
    cleanups.push(() => listener.stop(true));
    const c = client();
    const url = `http://127.0.0.1:${listener.port}/`;
    expect(await (await c.fetch(...req(url))).text()).toBe("ok");
    c.closeIdle("127.0.0.1", listener.port);
    await withTimeout((async () => { while (seen.fins === 0) await Bun.sleep(10); })(), 3000, "the FIN");
    expect(await (await c.fetch(...req(url))).text()).toBe("ok");
    expect({ ...seen, opened: c.opened() }).toEqual({ fins: 1, resets: 0, opened: 2 });
  });

  test("an idle connection whose time runs out is ended cleanly (FIN, no reset); one whose upstream never closes in turn is reset after idleTimeoutMs more", async () => {
    const seen = { fins: 0, resets: 0, closes: 0 };
    let closeOnFin = true;
    const listener = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data: (socket) => void socket.write(ok),
        end: (socket) => void (seen.fins++, closeOnFin && socket.end()),
        error: () => void seen.resets++,
        close: (_socket, error) => void (seen.closes++, error && seen.resets++),
      },
    });
    cleanups.push(() => listener.stop(true));
    const c = client({ idleTimeoutMs: 100 });
    const url = `http://127.0.0.1:${listener.port}/`;
    expect(await (await c.fetch(...req(url))).text()).toBe("ok");
    await withTimeout((async () => { while (seen.closes === 0) await Bun.sleep(10); })(), 3000, "the close");
    expect(seen).toEqual({ fins: 1, resets: 0, closes: 1 });
    closeOnFin = false; // an upstream that keeps its side open after the FIN
    expect(await (await c.fetch(...req(url))).text()).toBe("ok");
    await withTimeout((async () => { while (seen.fins < 2) await Bun.sleep(10); })(), 3000, "the second FIN");
    await withTimeout((async () => { while (seen.closes < 2) await Bun.sleep(10); })(), 3000, "the reset after the FIN");
    expect({ ...seen, opened: c.opened() }).toEqual({ fins: 2, resets: 0, closes: 2, opened: 2 });
  });

  test("sends the headers exactly as given, Host included, adding nothing", async () => {
    const server = rawServer((_head, socket) => socket.write(ok));
    const c = client();
    const headers = { host: "example.test", "x-one": "1", "accept-encoding": "gzip" };
    await (await c.fetch(...req(`${server.url}/p/a?q=1&r`, { headers }))).text();
    const [line, ...fields] = server.heads[0]!.split("\r\n");
    expect(line).toBe("GET /p/a?q=1&r HTTP/1.1");
    expect(fields.sort()).toEqual(["accept-encoding: gzip", "host: example.test", "x-one: 1"]);
    await (await c.fetch(...req(`${server.url}/`))).text();
    expect(server.heads[1]).toBe(`GET / HTTP/1.1\r\nhost: 127.0.0.1:${server.port}`); // host from the URL only when absent
  });

  test("a response that arrives a byte at a time: head, then a chunked body", async () => {
    const wire = "HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    const server = rawServer((_head, socket) => {
      void (async () => {
        for (const char of wire) {
          socket.write(char);
          socket.flush();
          await Bun.sleep(1);
        }
      })();
    });
    const c = client();
    const res = await c.fetch(...req(server.url));
    expect([res.status, res.headers.get("x-a"), await res.text()]).toEqual([200, "1", "abcde"]);
    expect(await (await c.fetch(...req(server.url))).text()).toBe("abcde");
    expect(server.counts.opened).toBe(1); // the framing ended exactly: the connection was reused
  });

  test("a reader that stops reading stops the socket: the upstream's writes back up", async () => {
    const chunk = Buffer.alloc(64 * 1024, 120);
    let written = 0;
    let blocked = Promise.withResolvers<void>();
    const server = rawServer((_head, socket) => {
      socket.write("HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n");
      // Writes until the kernel's buffers are full (a short write), bounded at 64 MiB.
      for (let i = 0; i < 1024; i++) {
        const n = socket.write(chunk);
        written += Math.max(0, n);
        if (n < chunk.length) return blocked.resolve();
      }
    });
    const res = await client().fetch(...req(server.url));
    await withTimeout(blocked.promise, 5000, "the upstream's writes to back up");
    // Held by sluice: the stream's 64 KiB and what the socket had read; the rest waits in the kernel.
    expect(written).toBeLessThan(32 * 1024 * 1024);
    await res.body!.cancel();
  });

  test("keeps the status text and never follows redirects", async () => {
    const server = rawServer((_head, socket) => socket.write("HTTP/1.1 302 Found It\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"));
    const res = await client().fetch(...req(server.url));
    expect([res.status, res.statusText, res.headers.get("location")]).toEqual([302, "Found It", "/elsewhere"]);
    expect(server.heads.length).toBe(1);
  });

  test("skips 1xx interim responses", async () => {
    const server = rawServer((_head, socket) =>
      socket.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n" + ok),
    );
    const res = await client().fetch(...req(server.url));
    expect([res.status, res.headers.has("link"), await res.text()]).toEqual([200, false, "ok"]);
  });

  test("skips empty lines before a status line, also when a CRLF is split across reads", async () => {
    const server = rawServer((_head, socket, nth) => {
      if (nth === 1) return void socket.write(`\r\n\r\n${ok}`);
      socket.write("\r");
      setTimeout(() => socket.write(`\nHTTP/1.1 100 Continue\r\n\r\n\r\n${ok}`), 20);
    });
    const c = client();
    for (let i = 0; i < 2; i++) {
      const res = await c.fetch(...req(server.url));
      expect([res.status, await res.text()]).toEqual([200, "ok"]);
    }
    expect(server.counts.opened).toBe(1);
  });

  test("de-chunks a body with chunk extensions and trailers, then reuses the connection", async () => {
    const chunked = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;name=val\r\nhello\r\n6 ; x=\"y\"\r\n world\r\n0\r\ntrailer-x: 1\r\n\r\n";
    const server = rawServer((_head, socket) => socket.write(chunked));
    const c = client();
    expect(await (await c.fetch(...req(server.url))).text()).toBe("hello world");
    expect(await (await c.fetch(...req(server.url))).text()).toBe("hello world");
    expect(server.counts.opened).toBe(1);
  });

  test("reads a close-delimited body until EOF and does not pool the connection", async () => {
    const server = rawServer((_head, socket) => {
      socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nsome bytes");
      setTimeout(() => (socket.write(" and more"), socket.end()), 20);
    });
    const c = client();
    expect(await (await c.fetch(...req(server.url))).text()).toBe("some bytes and more");
    expect(await (await c.fetch(...req(server.url))).text()).toBe("some bytes and more");
    expect(server.counts.opened).toBe(2);
  });

  test("retries once on a fresh connection when a pooled one was closed by the upstream", async () => {
    // The second request on any connection gets EOF with no response, like a keep-alive close race.
    const server = rawServer((_head, socket, nth) => (nth === 1 ? socket.write(ok) : socket.end()));
    const c = client();
    expect(await (await c.fetch(...req(server.url))).text()).toBe("ok");
    expect(await (await c.fetch(...req(server.url))).text()).toBe("ok");
    expect(server.counts.opened).toBe(2);
  });

  test("an upstream that closes without responding on a fresh connection rejects", async () => {
    const server = rawServer((_head, socket) => socket.end());
    const error = await client().fetch(...req(server.url)).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain("closed the connection before responding");
    expect(server.counts.opened).toBe(1);
  });

  test.each([
    ["HTTP/1.1 2x0 OK\r\n\r\n", "invalid status line"],
    ["HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "invalid header line"],
    ["HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\n\r\n", "invalid header line"],
    ["HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello", "invalid content-length"],
    [`HTTP/1.1 200 OK\r\nx-big: ${"a".repeat(300)}\r\n\r\n`, "longer than 256 bytes"],
  ])("a malformed response rejects with a TypeError: %j", async (response, message) => {
    const server = rawServer((_head, socket) => socket.write(response));
    const error = await client({ maxHeaderBytes: 256 }).fetch(...req(server.url)).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain(message);
  });

  test("a malformed chunk size that comes after the head errors the body", async () => {
    const server = rawServer((_head, socket) => {
      socket.write("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n");
      setTimeout(() => socket.write("zz\r\nhello\r\n"), 50);
    });
    const res = await client().fetch(...req(server.url));
    const error = await res.text().catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain('invalid chunk size "zz"');
  });

  test.each([
    ["a malformed chunk size", "transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n", 'invalid chunk size "zz"'],
    ["chunk data longer than its size", "transfer-encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", "chunk data longer than its size"],
    ["a bare LF after a chunk size", "transfer-encoding: chunked\r\n\r\n3\nabc\n0\n\n", "not ended by CRLF"],
  ])("%s in the bytes that came with the head rejects the response, not its body", async (_name, rest, message) => {
    const server = rawServer((_head, socket) => socket.write(`HTTP/1.1 200 OK\r\n${rest}`));
    const error = await client().fetch(...req(server.url)).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain(message);
    for (let waited = 0; server.counts.closed === 0 && waited < 3000; waited += 10) await Bun.sleep(10);
    expect(server.counts.closed).toBe(1); // and the connection is closed, not pooled
  });

  test("an early response is delivered while the request body streams, then the body source is cancelled", async () => {
    const server = rawServer((_head, socket) => {
      socket.write("HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!");
      socket.end();
    });
    const cancelled = Promise.withResolvers<void>();
    const body = new ReadableStream<Uint8Array>({
      pull: async (c) => (await Bun.sleep(1), c.enqueue(new Uint8Array(16384).fill(120))), // endless "xxx..."
      cancel: () => cancelled.resolve(),
    });
    const res = await client().fetch(...req(server.url, { method: "POST", body, duplex: "half" } as RequestInit));
    expect([res.status, await res.text()]).toEqual([413, "too big!"]);
    await withTimeout(cancelled.promise, 3000, "request body to be cancelled");
  });

  test("a request body that errors rejects with the error as cause and closes the connection", async () => {
    const server = rawServer(() => {}); // waits for the rest of the body
    const closed = server.closedOnce();
    const failure = new Error("client upload broke");
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(encoder.encode("partial"));
        await Bun.sleep(20);
        c.error(failure);
      },
    });
    const error = await client().fetch(...req(server.url, { method: "POST", body, duplex: "half" } as RequestInit)).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.cause).toBe(failure);
    await withTimeout(closed, 3000, "upstream to see the connection close");
  });

  test("aborting before the response head rejects with the reason and closes the connection", async () => {
    const server = rawServer(() => {}); // never answers
    const closed = server.closedOnce();
    const controller = new AbortController();
    const pending = client().fetch(...req(server.url, { signal: controller.signal }));
    await withTimeout(
      (async () => {
        while (server.heads.length === 0) await Bun.sleep(5);
      })(),
      3000,
      "request to arrive",
    );
    const reason = new Error("gave up");
    controller.abort(reason);
    expect(await pending.catch((e) => e)).toBe(reason);
    await withTimeout(closed, 3000, "upstream to see the connection close");
  });

  test("idle connections close after idleTimeoutMs, and close() closes the rest", async () => {
    const server = rawServer((_head, socket) => socket.write(ok));
    const quick = client({ idleTimeoutMs: 30 });
    await (await quick.fetch(...req(server.url))).text();
    await withTimeout(server.closedOnce(), 3000, "idle timeout");
    const c = client();
    await (await c.fetch(...req(server.url))).text();
    expect(server.counts.closed).toBe(1);
    const closed = server.closedOnce();
    c.close();
    await withTimeout(closed, 3000, "close() to close the idle connection");
    expect(server.counts).toEqual({ opened: 2, closed: 2 });
  });
});
