/**
 * @module Client limits and timeouts through raw TCP sockets, on the binary and under Deno: an
 * idle keep-alive connection is closed, a header dribble (slowloris) is closed while others
 * are served, a stalled request body gets 408 and cancels the upstream request, so does a
 * chunked body whose framing breaks (400), too many or too large headers get 431, and neither a slow upstream nor a slow stream is cut by the
 * idle timeout.
 */

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { runSluice, type Sluice, startSluice, TARGETS, type Target, tempDir, until } from "../harness.ts";

/** Bun's header timeout is fixed (10 s, closed 10-12 s after the first byte); Deno's is sluice's own. */
const headerTimeoutOf = (target: Target) => (target.name === "binary" ? 10_000 : 2_000);

/** A raw client connection: what it received, and when (ms after connecting) it was closed. */
interface RawClient {
  socket: Socket;
  received: () => string;
  /** Resolves with the ms from connect to the server's close; rejects after `timeoutMs`. */
  closed: Promise<number>;
  write: (text: string) => void;
}

function rawClient(port: number, timeoutMs = 30_000): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const started = performance.now();
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (data += chunk));
    const closed = new Promise<number>((done, fail) => {
      const timer = setTimeout(() => {
        socket.destroy();
        fail(new Error(`the connection was still open after ${timeoutMs}ms; received: ${JSON.stringify(data.slice(0, 300))}`));
      }, timeoutMs);
      socket.on("close", () => {
        clearTimeout(timer);
        done(performance.now() - started);
      });
    });
    closed.catch(() => {}); // observed by the tests that wait for it
    socket.on("error", () => {}); // a reset closes too
    socket.once("connect", () => resolve({ socket, received: () => data, closed, write: (text) => void socket.write(text) }));
    socket.once("error", reject);
  });
}

/**
 * Resolves once a whole response (its Content-Length bytes, or its last chunk) is in, or the server
 * closed the connection: Deno.serve sends `Connection: close` but keeps the connection open
 * (docs/runtime-notes.md), and a client closes it then.
 */
async function answered(client: RawClient): Promise<void> {
  let closed = false;
  void client.closed.finally(() => (closed = true)).catch(() => {});
  const whole = (): boolean => {
    const text = client.received();
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return false;
    const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
    return length ? text.length - end - 4 >= Number(length[1]) : text.endsWith("\r\n0\r\n\r\n"); // else chunked
  };
  await until(() => closed || whole(), 30_000, "a whole response or the close");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
}

describe.each(TARGETS)("client limits ($name)", (target) => {
  // Deno.serve has no idle or header timeout (docs/runtime-notes.md): those two run on the binary.
  const onConnectionTimeouts = target.name === "binary" ? test : test.skip;

  onConnectionTimeouts("an idle keep-alive connection is closed after --idle-timeout; a slow upstream and a slow stream are not cut", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--idle-timeout", "1s"] });
    // Idle: one request, then nothing. Bun applies its idle timeout in 4 s steps.
    const idle = await rawClient(sluice.httpPort);
    idle.write("GET /status?code=204 HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => idle.received().includes("\r\n\r\n"), 10_000, "the response");
    const answeredAt = performance.now();
    await idle.closed;
    const idleMs = performance.now() - answeredAt;
    expect(idle.received()).toStartWith("HTTP/1.1 204");
    expect(idle.received().toLowerCase()).not.toContain("connection: close");
    expect(idleMs).toBeLessThan(8_000);

    // An upstream that answers after 6 s: longer than the idle timeout (and Bun's 4 s step).
    const slow = await rawClient(sluice.httpPort);
    slow.write("GET /slow?ms=6000 HTTP/1.1\r\nHost: x\r\n\r\n");
    // A stream whose chunks come 800 ms apart for about 5 s: every gap is under the idle timeout.
    const stream = await rawClient(sluice.httpPort);
    stream.write("GET /stream?chunks=6&gap=800 HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => slow.received().includes("slow 6000"), 20_000, "the slow response");
    expect(slow.received()).toStartWith("HTTP/1.1 200");
    await until(() => stream.received().includes("chunk 6\n") && stream.received().endsWith("0\r\n\r\n"), 20_000, "the whole stream");
    // Both connections then idle out in turn.
    await Promise.all([slow.closed, stream.closed]);
    expect((await sluice.waitFor((r) => r.event === "access" && r.path === "/slow")).outcome).toBeUndefined();
    expect((await sluice.waitFor((r) => r.event === "access" && r.path === "/stream")).outcome).toBeUndefined();
    await stop(sluice);
  }, 90_000);

  onConnectionTimeouts("a connection dribbling its headers is closed after the header timeout while others are served", async () => {
    const headerTimeout = headerTimeoutOf(target);
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--header-timeout", `${headerTimeout}ms`] });
    const dribble = await rawClient(sluice.httpPort, 30_000);
    dribble.write("GET / HTTP/1.1\r\nHost: x\r\n");
    let served = 0;
    const sending = (async () => {
      for (let i = 0; i < 100 && !dribble.socket.destroyed; i++) {
        dribble.write(`X-Dribble-${i}: 1\r\n`);
        // Others are served meanwhile.
        if ((await fetch(`${sluice.url}/status?code=204`)).status === 204) served++;
        await sleep(300);
      }
    })();
    const closedAfter = await dribble.closed;
    await sending;
    expect(dribble.received()).toBe("");
    expect(closedAfter).toBeGreaterThan(headerTimeout - 200);
    expect(closedAfter).toBeLessThan(headerTimeout + 4_500);
    expect(served).toBeGreaterThan(3);
    await stop(sluice);
  }, 60_000);

  test("a request body that stalls gets 408 after --body-timeout, the connection closes and the upstream request is cancelled", async () => {
    const record = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--body-timeout", "1s"], env: { RECORD_FILE: record } });
    const client = await rawClient(sluice.httpPort);
    const sentAt = performance.now();
    // The app waits for its request to be aborted (or 20 s), without reading the body.
    client.write("POST /abort-probe?ms=20000 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
    await answered(client);
    expect(client.received()).toStartWith("HTTP/1.1 408");
    expect(client.received().toLowerCase()).toContain("connection: close");
    expect(performance.now() - sentAt).toBeGreaterThan(900);
    expect(performance.now() - sentAt).toBeLessThan(10_000);
    const access = await sluice.waitFor((r) => r.event === "access" && r.path === "/abort-probe");
    expect(access.status).toBe(408);
    await until(() => existsSync(record), 10_000, "the app's record of its aborted request");
    const probe = JSON.parse(readFileSync(record, "utf8").trim().split("\n")[0]!) as { aborted: boolean; afterMs: number };
    expect(probe.aborted).toBe(true);
    expect(probe.afterMs).toBeLessThan(5_000);
    await stop(sluice);
  }, 60_000);

  test("a chunked request body whose framing breaks midway gets 400 with Connection: close, and the upstream request is cancelled", async () => {
    const record = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], env: { RECORD_FILE: record } });
    const client = await rawClient(sluice.httpPort);
    client.write("POST /abort-probe?ms=20000 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Request-Id: bad-chunks\r\n\r\n5\r\nhello\r\n");
    // The request is at the app, its body streaming, before the bad size line comes.
    await until(async () => ((await (await fetch(`http://127.0.0.1:${sluice.targetPort}/seen`)).json()) as string[]).length > 0, 15_000, "the request to reach the app");
    client.write("ZZ\r\nhello\r\n0\r\n\r\n");
    await answered(client);
    expect(client.received()).toStartWith("HTTP/1.1 400");
    expect(client.received().toLowerCase()).toContain("connection: close");
    const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "bad-chunks");
    // Bun answers its own 400 and ends the request as a cancelled one; Deno's body stream
    // fails, and sluice answers. Before, that was a 502 blaming the app.
    if (target.name === "deno") expect(access).toMatchObject({ status: 400, rejected: expect.stringMatching(/^malformed request body \(.+\)$/) });
    else expect(access).toMatchObject({ status: 499, outcome: "client-cancel" });
    expect(access.upstreamError).toBeUndefined();
    await until(() => existsSync(record), 10_000, "the app's record of its aborted request");
    expect(JSON.parse(readFileSync(record, "utf8").trim().split("\n")[0]!)).toMatchObject({ probe: "abort", aborted: true });
    await stop(sluice);
  }, 60_000);

  test("a client that goes away midway through its request body is a 499 client-cancel, not a malformed body, and the upstream request is cancelled", async () => {
    const record = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], env: { RECORD_FILE: record } });
    const client = await rawClient(sluice.httpPort);
    client.write("POST /abort-probe?ms=20000 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nX-Request-Id: gone-midway\r\n\r\n" + "x".repeat(1000));
    await until(async () => ((await (await fetch(`http://127.0.0.1:${sluice.targetPort}/seen`)).json()) as string[]).length > 0, 15_000, "the request to reach the app");
    client.socket.destroy();
    const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "gone-midway");
    expect(access).toMatchObject({ status: 499, outcome: "client-cancel" });
    expect(access.rejected).toBeUndefined();
    const metrics = await (await fetch(`${sluice.adminUrl}/metrics`)).text();
    expect(metrics).toContain('sluice_requests_total{code="499"} 1\n');
    expect(metrics).not.toContain('sluice_requests_total{code="400"}');
    await until(() => existsSync(record), 10_000, "the app's record of its aborted request");
    expect(JSON.parse(readFileSync(record, "utf8").trim().split("\n")[0]!)).toMatchObject({ probe: "abort", aborted: true });
    await stop(sluice);
  }, 60_000);

  test("a body that keeps flowing, however slowly, is not cut", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--body-timeout", "1s", "--idle-timeout", "1s"] });
    const client = await rawClient(sluice.httpPort);
    client.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
    for (let i = 0; i < 10; i++) {
      await sleep(600); // 6 s in all: longer than both timeouts, every pause shorter
      client.write("x");
    }
    await until(() => client.received().includes("bodyLength"), 10_000, "the echo");
    expect(client.received()).toStartWith("HTTP/1.1 200");
    expect(client.received()).toContain('"bodyLength":10');
    await stop(sluice);
  }, 60_000);

  test("too many or too large headers get 431 naming the limit, never the headers", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--max-header-count", "50", "--max-header-size", "4KiB"] });
    const many = await rawClient(sluice.httpPort);
    const fields = Array.from({ length: 60 }, (_, i) => `X-Field-${i}: secret-${i}\r\n`).join("");
    many.write(`GET /status?code=204 HTTP/1.1\r\nHost: x\r\n${fields}\r\n`);
    await answered(many);
    expect(many.received()).toStartWith("HTTP/1.1 431");
    expect(many.received()).toContain("more than 50 header fields (--max-header-count)");
    expect(many.received()).not.toContain("secret");

    const large = await rawClient(sluice.httpPort);
    large.write(`GET /status?code=204 HTTP/1.1\r\nHost: x\r\nX-Large: ${"s".repeat(5000)}\r\n\r\n`);
    await answered(large);
    expect(large.received()).toStartWith("HTTP/1.1 431");
    expect(large.received()).toContain("request head over 4096 bytes (--max-header-size)");
    expect(large.received()).not.toContain("sss");

    // Within the limits, the same request goes through.
    const fine = await fetch(`${sluice.url}/status?code=204`, { headers: { "x-field": "1" } });
    expect(fine.status).toBe(204);
    const refused = sluice.records.filter((r) => r.event === "access" && r.status === 431);
    expect(refused).toHaveLength(2);
    await stop(sluice);
  }, 60_000);

  test("the 431 goes with its Content-Length, uncompressed, as sluice's other answers do", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--max-header-count", "50"] });
    const many = await rawClient(sluice.httpPort);
    const fields = Array.from({ length: 60 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join("");
    many.write(`GET /status?code=204 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n${fields}\r\n`);
    await answered(many);
    const [head, body] = many.received().split("\r\n\r\n") as [string, string];
    expect(head).toStartWith("HTTP/1.1 431");
    expect(head).not.toMatch(/^(transfer|content)-encoding:/im);
    expect(head).toMatch(new RegExp(`^content-length: ${body.length}$`, "im"));
    expect(body).toBe("Request Header Fields Too Large: more than 50 header fields (--max-header-count)\n");
    await stop(sluice);
  }, 60_000);

  test("--max-header-size is exact: a head of that many bytes passes, one byte more gets 431", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--max-header-size", "4KiB"] });
    // A long Host: the head is measured as sent, not with the URL the runtime built from it.
    const headOf = (bytes: number) => {
      const start = "GET /status?code=200 HTTP/1.1\r\nHost: a-rather-long-host-name.example.com:8080\r\nX-Pad: ";
      return `${start}${"p".repeat(bytes - start.length - 4)}\r\n\r\n`;
    };
    for (const [bytes, status] of [[4096, "200"], [4097, "431"]] as const) {
      const client = await rawClient(sluice.httpPort);
      const head = headOf(bytes);
      expect(head.length).toBe(bytes);
      client.write(head);
      await answered(client);
      expect(client.received()).toStartWith(`HTTP/1.1 ${status}`);
      client.socket.destroy();
    }
    await stop(sluice);
  }, 60_000);

  test("the default limits: 101 headers or a 17 KB header get 431", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const many = await rawClient(sluice.httpPort);
    many.write(`GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 100 }, (_, i) => `X-F${i}: 1\r\n`).join("")}\r\n`);
    await answered(many);
    expect(many.received()).toStartWith("HTTP/1.1 431");
    // Over 16 KiB: Bun answers its own 431 (no body) before sluice sees the request.
    const large = await rawClient(sluice.httpPort);
    large.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Large: ${"s".repeat(17_000)}\r\n\r\n`);
    await answered(large);
    expect(large.received()).toStartWith("HTTP/1.1 431");
    await stop(sluice);
  }, 60_000);

  test("limits the runtime cannot apply are refused at start, naming the option", async () => {
    const header = await runSluice(target, ["check", "--header-timeout", "5s"]);
    const idle = await runSluice(target, ["check", "--idle-timeout", "10m"]);
    const size = await runSluice(target, ["check", "--max-header-size", "1MiB"]);
    if (target.name === "binary") {
      expect(header.code).toBe(78);
      expect(header.stderr).toContain('Cannot apply --header-timeout on this runtime: the Bun binary gives every request\'s headers a fixed 10s; current value is "5s"');
      expect(idle.code).toBe(78);
      expect(idle.stderr).toContain("--idle-timeout");
      expect(size.stderr).toContain("BUN_OPTIONS=--max-http-header-size=1048576");
    } else {
      expect(header.code).toBe(0);
      expect(idle.code).toBe(0);
      expect(size.stderr).toContain("Cannot apply --max-header-size on this runtime: Deno reads request heads up to 65536 bytes");
    }
    expect(size.code).toBe(78);
  }, 60_000);

  if (target.name === "deno") {
    test("under Deno, idle and header timeouts set on purpose are reported as not applied; the defaults are not", async () => {
      const set = await startSluice(target, { args: ["--shutdown-delay", "0", "--idle-timeout", "5s"] });
      expect(set.events("config.unapplied").map((r) => r.source)).toEqual(["--idle-timeout"]);
      await stop(set);
      const defaults = await startSluice(target, { args: ["--shutdown-delay", "0"] });
      expect(defaults.events("config.unapplied")).toEqual([]);
      await stop(defaults);
    }, 60_000);
  }
});
