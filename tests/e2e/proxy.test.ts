/**
 * @module The forwarder end to end: bytes and streams pass through, cancels propagate, limits and
 * upstream failures map to their statuses, headers are rewritten, the access log tells the truth.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { connect as connect2 } from "node:http2";
import { connect } from "node:net";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { BUN, type LogRecord, openFds, refuses, type Sluice, startSluice, TARGETS, tempDir, until } from "../harness.ts";

/** What /gzip decodes to (see tests/fixtures/app.ts). */
const GZIP_TEXT = "compressible ".repeat(4000);

interface RawResponse {
  /** The status line and header lines as received. */
  head: string;
  status: number;
  /** Header names in lower case, values as received (repeated headers joined with ", "). */
  headers: Record<string, string>;
  /** Every byte after the head, as it came on the wire. */
  wire: Uint8Array;
  /** The payload (chunked framing removed, cut at content-length); undefined when the framing says it is incomplete. */
  body: Uint8Array | undefined;
  /** How the connection ended: the server closed it, reset it, or the client stopped at a complete response. */
  end: "eof" | "reset" | "complete";
}

/**
 * Sends `parts` on a fresh TCP connection and reads the response: a client that decodes nothing
 * and hides nothing (fetch hides body bytes on HEAD/204/304 and decodes gzip). By default it
 * reads until the server closes, so every byte sent is seen: the request should carry
 * `Connection: close`. With `until: "complete"` it stops once the response is complete by its
 * own framing, as a client does that honours `connection: close` without waiting for EOF.
 */
function rawHttp(
  port: number,
  parts: (string | Uint8Array)[],
  { until = "eof", timeoutMs = 15_000 }: { until?: "eof" | "complete"; timeoutMs?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw request to port ${port} got no ${until === "eof" ? "EOF" : "complete response"} within ${timeoutMs}ms; got: ${Buffer.concat(chunks).toString("latin1").slice(0, 500)}`));
    }, timeoutMs);
    const finish = (end: RawResponse["end"]): void => {
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve({ ...parseResponse(new Uint8Array(Buffer.concat(chunks))), end });
      } catch (error) {
        reject(error);
      }
    };
    socket.on("connect", () => {
      for (const part of parts) socket.write(part);
    });
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (until === "complete" && isComplete(new Uint8Array(Buffer.concat(chunks)))) finish("complete");
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNRESET" && chunks.length > 0) return finish("reset");
      clearTimeout(timer);
      reject(error);
    });
    socket.on("end", () => finish("eof"));
  });
}

/** True when `bytes` hold a whole response framed by content-length or chunked encoding. */
function isComplete(bytes: Uint8Array): boolean {
  try {
    const { headers, body } = parseResponse(bytes);
    return body !== undefined && (headers["content-length"] !== undefined || /chunked/i.test(headers["transfer-encoding"] ?? ""));
  } catch {
    return false; // the head has not arrived yet
  }
}

function parseResponse(bytes: Uint8Array): Omit<RawResponse, "end"> {
  const text = Buffer.from(bytes).toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 500))}`);
  const [statusLine = "", ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const wire = bytes.subarray(end + 4);
  let body: Uint8Array | undefined = wire;
  if (/chunked/i.test(headers["transfer-encoding"] ?? "")) body = dechunk(wire);
  else if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    body = wire.length >= length ? wire.subarray(0, length) : undefined;
  }
  return { head: text.slice(0, end), status, headers, wire, body };
}

/** Removes chunked framing; undefined when the last chunk has not arrived (a cut body). */
function dechunk(wire: Uint8Array): Uint8Array | undefined {
  const out: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = Buffer.from(wire).indexOf("\r\n", at);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(Buffer.from(wire.subarray(at, lineEnd)).toString("latin1").split(";")[0]!, 16);
    if (!Number.isFinite(size)) throw new Error("invalid chunk size line");
    at = lineEnd + 2;
    if (size === 0) return new Uint8Array(Buffer.concat(out));
    if (at + size + 2 > wire.length) return undefined;
    out.push(wire.subarray(at, at + size));
    at += size + 2;
  }
}

function get(path: string, port: number, headers: Record<string, string> = {}, method = "GET"): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** The access record of the request with this id (written when its response has ended). */
function accessRecord(sluice: Sluice, requestId: string): Promise<LogRecord> {
  return sluice.waitFor((r) => r.event === "access" && r.requestId === requestId, 15_000);
}

/** Paths the fixture app has been asked for, asked on its own port (not through sluice). */
async function seenByApp(sluice: Sluice): Promise<string[]> {
  return (await fetch(`http://127.0.0.1:${sluice.targetPort}/seen`)).json() as Promise<string[]>;
}

/** Waits until sluice's own in-flight registry is back to `count` (an exchange that never ends leaks). */
function inFlightBecomes(sluice: Sluice, count: number): Promise<void> {
  return until(
    async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes(`sluice_requests_in_flight ${count}\n`),
    15_000,
    `${count} requests in flight in sluice`,
  );
}

/** The last record the fixture app wrote with this probe name, once there is one. */
async function appRecord(file: string, probe: string): Promise<Record<string, unknown>> {
  const find = () =>
    readFileSync(file, { encoding: "utf8", flag: "a+" }).split("\n").filter((l) => l.includes(`"probe":"${probe}"`)).at(-1);
  await until(() => find() !== undefined, 15_000, `the app's ${probe} record`);
  return JSON.parse(find()!);
}

/** One HTTP/2 request over cleartext with prior knowledge (h2c): its status (undefined when the session failed) and body. */
function h2Request(port: number, headers: Record<string, string>, body?: string): Promise<{ status: number | undefined; body: string }> {
  return new Promise((resolve) => {
    const session = connect2(`http://127.0.0.1:${port}`);
    const timer = setTimeout(() => done(undefined), 15_000);
    let status: number | undefined;
    let text = "";
    const done = (got: number | undefined): void => {
      clearTimeout(timer);
      session.destroy();
      resolve({ status: got, body: text });
    };
    session.on("error", () => done(undefined));
    const stream = session.request(headers);
    stream.on("response", (head) => (status = Number(head[":status"])));
    stream.on("data", (chunk: Buffer) => (text += chunk.toString()));
    stream.on("end", () => done(status));
    stream.on("error", () => done(undefined));
    stream.end(body);
  });
}

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyLength: number;
}

describe.each(TARGETS)("proxy ($name)", (target) => {
  test("a gzip response reaches a client that does not decode byte for byte, framed correctly", async () => {
    const sluice = await startSluice(target);
    const direct = await rawHttp(sluice.targetPort, [get("/gzip", sluice.targetPort, { "Accept-Encoding": "gzip" })]);
    expect(direct.headers["content-encoding"]).toBe("gzip");
    const viaSluice = await rawHttp(sluice.httpPort, [get("/gzip", sluice.httpPort, { "Accept-Encoding": "gzip" })]);
    expect(viaSluice.status).toBe(200);
    expect(viaSluice.headers["content-encoding"]).toBe("gzip");
    expect(Buffer.from(viaSluice.body!).equals(Buffer.from(direct.body!))).toBe(true);
    // Whatever the framing, it must describe the compressed bytes: nothing past the end, nothing short.
    if (viaSluice.headers["content-length"] !== undefined) {
      expect(Number(viaSluice.headers["content-length"])).toBe(direct.body!.length);
      expect(viaSluice.wire.length).toBe(direct.body!.length);
    } else {
      expect(viaSluice.headers["transfer-encoding"]).toBe("chunked");
    }
    expect(gunzipSync(viaSluice.body!).toString()).toBe(GZIP_TEXT);

    // The same through fetch with decoding off.
    const raw = await fetch(`${sluice.url}/gzip`, { headers: { "accept-encoding": "gzip" }, decompress: false });
    expect(raw.headers.get("content-encoding")).toBe("gzip");
    expect(Buffer.from(await raw.arrayBuffer()).equals(Buffer.from(direct.body!))).toBe(true);
  }, 60_000);

  test("clients without accept-encoding, and decoding clients, get valid bodies; with --compression=false sluice never compresses", async () => {
    const sluice = await startSluice(target, { args: ["--compression=false"] });
    // No accept-encoding: the body must still be valid for the content-encoding it is labelled with.
    const plain = await rawHttp(sluice.httpPort, [get("/gzip", sluice.httpPort)]);
    expect(plain.status).toBe(200);
    const text = plain.headers["content-encoding"] === "gzip" ? gunzipSync(plain.body!).toString() : Buffer.from(plain.body!).toString();
    expect(text).toBe(GZIP_TEXT);
    // A decoding client (fetch's default) gets the text.
    const decoded = await fetch(`${sluice.url}/gzip`);
    expect(await decoded.text()).toBe(GZIP_TEXT);
    // An uncompressed upstream response stays uncompressed even when the client would accept gzip.
    for (const path of ["/", "/gzip-bytes"]) {
      const direct = await rawHttp(sluice.targetPort, [get(path, sluice.targetPort)]);
      const viaSluice = await rawHttp(sluice.httpPort, [get(path, sluice.httpPort, { "Accept-Encoding": "gzip, br" })]);
      expect({ path, encoding: viaSluice.headers["content-encoding"] }).toEqual({ path, encoding: undefined });
      expect(Buffer.from(viaSluice.body!).equals(Buffer.from(direct.body!))).toBe(true);
    }
  }, 60_000);

  test("the first chunk of a slow streamed response reaches the client long before the upstream finishes", async () => {
    const sluice = await startSluice(target);
    const gapMs = 4000;
    const started = performance.now();
    // /stream sends chunk 1 at once, then waits gapMs before ending.
    const response = await fetch(`${sluice.url}/stream?chunks=1&gap=${gapMs}`);
    const reader = response.body!.getReader();
    const first = await reader.read();
    const firstAt = performance.now() - started;
    expect(new TextDecoder().decode(first.value)).toBe("chunk 1\n");
    let rest = "";
    for (let read = await reader.read(); !read.done; read = await reader.read()) rest += new TextDecoder().decode(read.value);
    const endAt = performance.now() - started;
    expect(rest).toBe("");
    expect(firstAt).toBeLessThan(gapMs / 2);
    expect(endAt).toBeGreaterThan(gapMs - 500);
  }, 60_000);

  test("a streamed request body (no content-length) reaches the upstream whole", async () => {
    const sluice = await startSluice(target);
    const piece = new Uint8Array(65_536).fill(97);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 5) return controller.close();
        sent++;
        controller.enqueue(sent === 5 ? piece.subarray(0, 7) : piece);
      },
    });
    // @ts-expect-error: duplex is in the fetch standard but not in the DOM types
    const response = await fetch(`${sluice.url}/echo`, { method: "POST", body, duplex: "half" });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.bodyLength).toBe(4 * 65_536 + 7);
    expect(echo.headers["content-length"]).toBeUndefined();
    const record = await accessRecord(sluice, response.headers.get("x-request-id")!);
    expect(record.bytesIn).toBe(4 * 65_536 + 7);
  }, 60_000);

  test("a client that disconnects cancels the upstream request, and the access log says 499", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { env: { RECORD_FILE: recordFile } });
    const client = new AbortController();
    const pending = fetch(`${sluice.url}/abort-probe?ms=30000`, { signal: client.signal, headers: { "x-request-id": "cancel-me" } })
      .catch((error: unknown) => error);
    const appInFlight = async () => Number(await (await fetch(`http://127.0.0.1:${sluice.targetPort}/in-flight`)).text());
    await until(async () => (await appInFlight()) === 1, 15_000, "the request to reach the app");
    client.abort();
    expect(await pending).toBeInstanceOf(Error);
    // The app's request signal fired: it gave up long before its own 30 s.
    const seen = await appRecord(recordFile, "abort");
    expect(seen).toMatchObject({ probe: "abort", aborted: true });
    expect(seen.afterMs as number).toBeLessThan(25_000);
    const record = await accessRecord(sluice, "cancel-me");
    expect(record).toMatchObject({ method: "GET", path: "/abort-probe", status: 499 });
    expect(await appInFlight()).toBe(0);
    await inFlightBecomes(sluice, 0);
  }, 60_000);

  test("a client that goes away in the middle of a streamed response cancels the upstream's stream", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { env: { RECORD_FILE: recordFile } });
    const client = new AbortController();
    const response = await fetch(`${sluice.url}/stream-probe?gap=100`, { signal: client.signal, headers: { "x-request-id": "gone-mid-stream" } });
    const reader = response.body!.getReader();
    let received = "";
    while (!received.includes("chunk 2\n")) received += new TextDecoder().decode((await reader.read()).value);
    client.abort();
    await reader.read().catch(() => {});
    const seen = await appRecord(recordFile, "stream-cancel");
    expect(seen.sent as number).toBeLessThan(100); // cancelled within seconds, not after the test
    const record = await accessRecord(sluice, "gone-mid-stream");
    expect(record).toMatchObject({ status: 499, outcome: "client-cancel" });
    expect(record.bytesOut as number).toBeGreaterThanOrEqual("chunk 1\nchunk 2\n".length);
    await inFlightBecomes(sluice, 0);
  }, 60_000);

  test("a declared content-length over --max-request-body gets 413 and the upstream is never asked", async () => {
    const sluice = await startSluice(target, { args: ["--max-request-body", "1000"] });
    // Only the head is sent: the 413 must come without waiting for (or reading) the body.
    const head = `POST /echo?declared HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\nX-Request-Id: too-big\r\n\r\n`;
    const response = await rawHttp(sluice.httpPort, [head], { until: "complete" });
    expect(response.status).toBe(413);
    expect(response.headers.connection).toContain("close"); // the unread body makes the connection unusable
    expect(response.headers["x-request-id"]).toBe("too-big");
    const record = await accessRecord(sluice, "too-big");
    // No byte of the body was sent, nor read: the declared length is a claim, not bytes in
    // (before, the record said bytesIn 5000, and any size a client declared).
    expect(record).toMatchObject({ status: 413, upstreamMs: null, bytesIn: 0 });
    expect(await seenByApp(sluice)).not.toContain("/echo?declared");
  }, 60_000);

  // Both runtimes take a Content-Length given twice with the same value, and hand it over as
  // "5000, 5000": read as a number, that was no length at all, so the request went to the app
  // and was cut there once its body passed the limit.
  test("sluice's own answers that close the connection say so once to a client that asked to close it (413, 431)", async () => {
    const sluice = await startSluice(target, { args: ["--max-request-body", "1000", "--max-header-count", "20"] });
    const tooLarge = await rawHttp(sluice.httpPort, [`POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n${"x".repeat(5000)}`]);
    const fields = Array.from({ length: 30 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join("");
    const tooMany = await rawHttp(sluice.httpPort, [`GET /echo HTTP/1.1\r\nHost: a.example\r\n${fields}Connection: close\r\n\r\n`]);
    for (const [response, status] of [[tooLarge, 413], [tooMany, 431]] as const) {
      // Deno adds its own "connection: close" for such a client: sluice's made it two.
      expect({ status: response.status, connection: response.head.match(/^connection:.*$/gim) }).toEqual({ status, connection: [expect.stringMatching(/^connection: *close$/i)] });
    }
  }, 60_000);

  test("a content-length over --max-request-body given twice gets 413 and the upstream is never asked", async () => {
    const sluice = await startSluice(target, { args: ["--max-request-body", "1000"] });
    const head = `POST /echo?declared-twice HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\nContent-Length: 5000\r\nX-Request-Id: too-big-twice\r\n\r\n`;
    const response = await rawHttp(sluice.httpPort, [head], { until: "complete" });
    expect(response.status).toBe(413);
    const record = await accessRecord(sluice, "too-big-twice");
    expect(record).toMatchObject({ status: 413, upstreamMs: null, bytesIn: 0 });
    expect(await seenByApp(sluice)).not.toContain("/echo?declared-twice");
  }, 60_000);

  test("a chunked request body over --max-request-body gets 413", async () => {
    const sluice = await startSluice(target, { args: ["--max-request-body", "1000"] });
    const chunk = `258\r\n${"y".repeat(600)}\r\n`; // 0x258 = 600 bytes
    const head = `POST /echo?chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nX-Request-Id: too-big-chunked\r\n\r\n`;
    // Two chunks cross the limit; the last chunk is never sent, so only the limit can end this.
    const response = await rawHttp(sluice.httpPort, [head, chunk, chunk], { until: "complete" });
    expect(response.status).toBe(413);
    expect(response.headers.connection).toContain("close");
    const record = await accessRecord(sluice, "too-big-chunked");
    expect(record.status).toBe(413);
  }, 60_000);

  test("request bodies under --max-request-body pass, with or without a content-length", async () => {
    const sluice = await startSluice(target, { args: ["--max-request-body", "1000"] });
    const declared = await fetch(`${sluice.url}/echo`, { method: "POST", body: "z".repeat(1000) });
    expect(declared.status).toBe(200);
    expect(((await declared.json()) as Echo).bodyLength).toBe(1000);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(400));
        controller.enqueue(new Uint8Array(400));
        controller.close();
      },
    });
    // @ts-expect-error: duplex is in the fetch standard but not in the DOM types
    const streamed = await fetch(`${sluice.url}/echo`, { method: "POST", body, duplex: "half" });
    expect(streamed.status).toBe(200);
    expect(((await streamed.json()) as Echo).bodyLength).toBe(800);
  }, 60_000);

  test("a request body over 128 MiB reaches the app whole, with or without a content-length", async () => {
    // Bun.serve refuses bodies over 128 MiB by default with its own 413 (midway for chunked ones).
    const sluice = await startSluice(target);
    const size = 130 * 1024 * 1024;
    const declared = await fetch(`${sluice.url}/echo`, { method: "POST", body: new Uint8Array(size) });
    expect({ status: declared.status, length: declared.status === 200 ? ((await declared.json()) as Echo).bodyLength : 0 }).toEqual({ status: 200, length: size });
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === size) return controller.close();
        controller.enqueue(new Uint8Array(1024 * 1024));
        sent += 1024 * 1024;
      },
    });
    // @ts-expect-error: duplex is in the fetch standard but not in the DOM types
    const streamed = await fetch(`${sluice.url}/echo`, { method: "POST", body, duplex: "half" });
    expect({ status: streamed.status, length: streamed.status === 200 ? ((await streamed.json()) as Echo).bodyLength : 0 }).toEqual({ status: 200, length: size });
  }, 120_000);

  test("an app that answers before the upload ends: clients that stop sending and leave leave no connection behind", async () => {
    const sluice = await startSluice(target);
    await fetch(`${sluice.url}/status?code=204`); // the upstream pool and the runtime warmed up
    const before = openFds(sluice.proc.pid);
    for (let i = 0; i < 20; i++) {
      // 10 of 100,000 bytes, then the app's answer (a page streamed to the client; the app
      // never reads the body), then gone: as a client does that stops an upload once it has
      // its answer.
      const head = `POST /page?bytes=100000 HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: early-${i}\r\nContent-Length: 100000\r\n\r\n`;
      const response = await rawHttp(sluice.httpPort, [head, "0123456789"], { until: "complete" });
      expect(response.body?.length).toBe(100_000);
      await accessRecord(sluice, `early-${i}`);
    }
    // Before, under Deno, each such connection stayed open (CLOSE-WAIT) for good, its body
    // read pending: 20 file descriptors more, still there a minute later.
    await until(() => openFds(sluice.proc.pid) <= before + 2, 15_000, `sluice's open fds back near ${before} (${openFds(sluice.proc.pid)})`);
  }, 60_000);

  test("502 when the upstream refuses the connection", async () => {
    const sluice = await startSluice(target);
    expect((await fetch(`${sluice.url}/`)).status).toBe(200); // leaves a pooled connection behind, if any
    expect(await (await fetch(`${sluice.url}/close-listener`)).text()).toBe("closing\n");
    await until(() => refuses(sluice.targetPort), 10_000, "the app to stop listening");
    const response = await fetch(`${sluice.url}/after-close`, { headers: { "x-request-id": "refused" } });
    expect(response.status).toBe(502);
    expect(await response.text()).toBe("Bad Gateway\n");
    const record = await accessRecord(sluice, "refused");
    expect(record.status).toBe(502);
    expect(typeof record.upstreamError).toBe("string");
  }, 60_000);

  test("502 when the upstream closes the connection without answering", async () => {
    // Accepts (so the TCP readiness check passes), then hangs up on every request.
    const script = `Bun.listen({ hostname: "127.0.0.1", port: Number(process.env.PORT), socket: { data(s) { s.end(); } } });`;
    const sluice = await startSluice(target, { child: [BUN, "-e", script] });
    const response = await fetch(`${sluice.url}/x`, { headers: { "x-request-id": "hung-up" } });
    expect(response.status).toBe(502);
    expect((await accessRecord(sluice, "hung-up")).status).toBe(502);
  }, 60_000);

  test("504 when the upstream sends no headers within --upstream-timeout", async () => {
    const sluice = await startSluice(target, { args: ["--upstream-timeout", "500ms"] });
    const started = performance.now();
    const response = await fetch(`${sluice.url}/hang`, { headers: { "x-request-id": "hang" } });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(504);
    expect(await response.text()).toBe("Gateway Timeout\n");
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(10_000);
    expect((await accessRecord(sluice, "hang")).status).toBe(504);
  }, 60_000);

  test("an upload longer than --upstream-timeout is not cut while it flows; the wait for headers starts at its end", async () => {
    const sluice = await startSluice(target, { args: ["--upstream-timeout", "1s", "--body-timeout", "10s"] });
    const socket = connect({ host: "127.0.0.1", port: sluice.httpPort });
    let received = "";
    socket.on("data", (bytes) => (received += bytes.toString("latin1")));
    const closed = new Promise((resolve) => socket.on("close", resolve));
    try {
      socket.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nX-Request-Id: long-upload\r\nConnection: close\r\n\r\n");
      for (let i = 0; i < 8; i++) {
        await Bun.sleep(400); // 3.2 s in all, every pause shorter than either timeout
        socket.write("x");
      }
      await closed;
    } finally {
      socket.destroy();
    }
    expect(received).toStartWith("HTTP/1.1 200");
    expect(received).toContain('"bodyLength":8');
    expect((await accessRecord(sluice, "long-upload")).status).toBe(200);
  }, 60_000);

  test("504 after --upstream-timeout when the app stops taking the request body", async () => {
    const sluice = await startSluice(target, { args: ["--upstream-timeout", "1s"] });
    // /hang never reads its body: once the socket buffers are full, nothing moves.
    const body = new Uint8Array(64 * 1024 * 1024);
    const response = await rawHttp(sluice.httpPort, [
      "POST /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\nX-Request-Id: stuck-upload\r\nConnection: close\r\n\r\n",
      body,
    ], { timeoutMs: 30_000 });
    expect(response.status).toBe(504);
    expect((await accessRecord(sluice, "stuck-upload")).status).toBe(504);
  }, 60_000);

  test("503 with Retry-After when the child is not ready within --hold-timeout", async () => {
    const sluice = await startSluice(target, {
      args: ["--hold-timeout", "500ms"],
      env: { APP_BIND_DELAY_MS: "60000" },
      waitReady: false,
    });
    await sluice.waitFor("listening");
    const started = performance.now();
    const response = await fetch(`${sluice.url}/`, { headers: { "x-request-id": "held" } });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("1");
    expect(elapsed).toBeGreaterThanOrEqual(450);
    expect(elapsed).toBeLessThan(10_000);
    expect((await accessRecord(sluice, "held")).status).toBe(503);
    expect(sluice.events("ready")).toEqual([]);
  }, 60_000);

  test("hop-by-hop headers are removed from the request and from the response", async () => {
    const sluice = await startSluice(target);
    const request = [
      "GET /echo HTTP/1.1",
      `Host: 127.0.0.1:${sluice.httpPort}`,
      "Connection: close, X-Secret",
      "X-Secret: named-by-connection",
      "Keep-Alive: timeout=5",
      "TE: trailers",
      "Upgrade: h2c",
      "Proxy-Authorization: Basic Zm9vOmJhcg==",
      "Proxy-Connection: keep-alive",
      "Trailer: X-Checksum",
      "X-Kept: yes",
      "",
      "",
    ].join("\r\n");
    const response = await rawHttp(sluice.httpPort, [request]);
    expect(response.status).toBe(200);
    const upstream = (JSON.parse(Buffer.from(response.body!).toString()) as Echo).headers;
    expect(upstream["x-kept"]).toBe("yes");
    for (const name of ["x-secret", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection", "trailer"]) {
      expect({ name, value: upstream[name] }).toEqual({ name, value: undefined });
    }
    // The upstream client may announce its own connection handling, never the client's.
    expect(upstream.connection ?? "").not.toMatch(/x-secret|close/i);
    // The app answered with `connection: x-drop-me`, `x-drop-me` and `keep-alive`.
    expect(response.headers["x-upstream"]).toBe("yes");
    expect(response.headers["x-drop-me"]).toBeUndefined();
    expect(response.headers["keep-alive"]).toBeUndefined();
    expect(response.headers.connection ?? "").not.toMatch(/x-drop-me/i);
  }, 60_000);

  test("a Connection header that lists Host or Content-Length leaves both in place; other listed fields go", async () => {
    const sluice = await startSluice(target);
    const request = [
      "POST /echo HTTP/1.1",
      "Host: app.example",
      "Connection: close, host, content-length, x-named",
      "X-Named: dropped",
      "X-Request-Id: connection-lists-host",
      "Content-Length: 5",
      "",
      "hello",
    ].join("\r\n");
    const response = await rawHttp(sluice.httpPort, [request]);
    expect(response.status).toBe(200);
    const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    // Before, the app got sluice's own address of it for Host (and the cache kept its answer
    // under app.example), and the body re-chunked, without the length the client gave.
    expect({ host: echo.headers.host, forwardedHost: echo.headers["x-forwarded-host"] }).toEqual({ host: "app.example", forwardedHost: "app.example" });
    expect(echo.headers["content-length"]).toBe("5");
    expect(echo.headers["transfer-encoding"]).toBeUndefined();
    expect(echo.bodyLength).toBe(5);
    expect(echo.headers["x-named"]).toBeUndefined();
    // A cacheable page the app made for another Host was stored under app.example's URL and
    // served to the next visitor of app.example.
    await rawHttp(sluice.httpPort, ["GET /cacheable?echo=host HTTP/1.1\r\nHost: app.example\r\nConnection: close, host\r\n\r\n"]);
    const next = await rawHttp(sluice.httpPort, ["GET /cacheable?echo=host HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"]);
    expect(Buffer.from(next.body!).toString()).toStartWith("served 1 host=app.example\n");
  }, 60_000);

  test("the upstream gets the client's end-to-end headers and sluice's own, and nothing else", async () => {
    const sluice = await startSluice(target);
    const request = `GET /echo HTTP/1.1\r\nHost: app.example\r\nX-Custom: 1\r\nAccept-Language: fr\r\nX-Request-Id: exact-1\r\nConnection: close\r\n\r\n`;
    const response = await rawHttp(sluice.httpPort, [request]);
    const upstream = (JSON.parse(Buffer.from(response.body!).toString()) as Echo).headers;
    // Both targets use sluice's own upstream client: it adds nothing (not even a connection header).
    const names = Object.keys(upstream).sort();
    expect(names).toEqual([
      "accept-language",
      "host",
      "x-custom",
      "x-forwarded-for",
      "x-forwarded-host",
      "x-forwarded-proto",
      "x-request-id",
      "x-request-start",
      "x-sendfile-type", // --x-sendfile is on by default
    ]);
  }, 60_000);

  test("X-Forwarded-* come from the real peer; an untrusted client's own values are replaced", async () => {
    const sluice = await startSluice(target);
    const response = await fetch(`${sluice.url}/echo`, {
      headers: {
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "spoofed.example",
        forwarded: "for=203.0.113.9",
        "x-request-start": "t=1",
      },
    });
    const upstream = ((await response.json()) as Echo).headers;
    expect(upstream["x-forwarded-for"]).toBe("127.0.0.1");
    expect(upstream["x-forwarded-proto"]).toBe("http");
    expect(upstream["x-forwarded-host"]).toBe(`127.0.0.1:${sluice.httpPort}`);
    expect(upstream.forwarded).toBeUndefined();
    expect(upstream["x-request-start"]).not.toBe("t=1");
  }, 60_000);

  test("forwarding headers named with underscores (X_Forwarded_Ssl) never reach the app, from any peer", async () => {
    // A CGI-style server (Rack under Puma before 6.4.3, wsgiref) maps "_" and "-" alike: the
    // alias would be the header itself to the app (X_Forwarded_Ssl: on made Rack take https).
    const aliases = {
      x_forwarded_ssl: "on",
      x_forwarded_port: "8443",
      "x-forwarded_proto": "https",
      x_forwarded_host: "spoofed.example",
      x_forwarded_for: "203.0.113.9",
      x_forwarded_prefix: "/evil",
      x_forwarded_scheme: "https",
      x_request_start: "t=1",
      x_custom_thing: "kept",
    };
    for (const args of [[], ["--trusted-proxies", "127.0.0.1"]]) {
      const sluice = await startSluice(target, { args });
      const response = await fetch(`${sluice.url}/echo`, { headers: aliases });
      const upstream = ((await response.json()) as Echo).headers;
      expect(Object.keys(upstream).filter((name) => name.includes("_"))).toEqual(["x_custom_thing"]);
      expect(upstream["x-forwarded-for"]).toBe("127.0.0.1");
      expect(upstream["x-forwarded-proto"]).toBe("http");
    }
  }, 60_000);

  test("client-address headers (X-Real-IP, Client-Ip, True-Client-IP ...) reach the app only from --trusted-proxies", async () => {
    // Apps read these before X-Forwarded-For (Rails' remote_ip: Client-Ip; chi's RealIP:
    // True-Client-IP, X-Real-IP): from any client they would name an address of its choosing.
    const claimed = {
      "x-real-ip": "203.0.113.1",
      "client-ip": "203.0.113.2",
      "true-client-ip": "203.0.113.3",
      "x-client-ip": "203.0.113.4",
      "x-cluster-client-ip": "203.0.113.5",
      "cf-connecting-ip": "203.0.113.6",
      "fastly-client-ip": "203.0.113.7",
    };
    const untrusted = await startSluice(target);
    const dropped = ((await (await fetch(`${untrusted.url}/echo`, { headers: claimed })).json()) as Echo).headers;
    for (const name of Object.keys(claimed)) expect(dropped[name]).toBeUndefined();
    expect(dropped["x-forwarded-for"]).toBe("127.0.0.1");
    const trusted = await startSluice(target, { args: ["--trusted-proxies", "127.0.0.1"] });
    const kept = ((await (await fetch(`${trusted.url}/echo`, { headers: claimed })).json()) as Echo).headers;
    for (const [name, value] of Object.entries(claimed)) expect(kept[name]).toBe(value);
  }, 60_000);

  test("on a dual-stack listener (--http-host ::) an IPv4 client is forwarded and logged as IPv4, an IPv6 one as IPv6", async () => {
    const sluice = await startSluice(target, { args: ["--http-host", "::"] });
    for (const [host, expected] of [["127.0.0.1", "127.0.0.1"], ["[::1]", "::1"]] as const) {
      const id = `dual-stack-${expected}`;
      const response = await fetch(`http://${host}:${sluice.httpPort}/echo`, { headers: { "x-request-id": id } });
      expect(((await response.json()) as Echo).headers["x-forwarded-for"]).toBe(expected); // not ::ffff:127.0.0.1
      expect((await accessRecord(sluice, id)).clientAddress).toBe(expected);
    }
    // An IPv6 address in a message is written in brackets ("::::8080" said nothing).
    for (const event of ["listening", "ready"]) expect(sluice.events(event)[0]?.message).toEndWith(` on [::]:${sluice.httpPort}`);
  }, 60_000);

  test("with --trusted-proxies the incoming X-Forwarded-* are extended and kept", async () => {
    const sluice = await startSluice(target, { args: ["--trusted-proxies", "127.0.0.1"] });
    const response = await fetch(`${sluice.url}/echo`, {
      headers: {
        "x-forwarded-for": "203.0.113.9, 198.51.100.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "shop.example",
        forwarded: "for=203.0.113.9;proto=https",
      },
    });
    const upstream = ((await response.json()) as Echo).headers;
    expect(upstream["x-forwarded-for"]).toBe("203.0.113.9, 198.51.100.7, 127.0.0.1");
    expect(upstream["x-forwarded-proto"]).toBe("https");
    expect(upstream["x-forwarded-host"]).toBe("shop.example");
    expect(upstream.forwarded).toBe("for=203.0.113.9;proto=https");
  }, 60_000);

  test("an app that answers with its own X-Request-Id: the client gets exactly one, the request's", async () => {
    const sluice = await startSluice(target);
    const echoed = await fetch(`${sluice.url}/request-id`, { headers: { "x-request-id": "same-1" } });
    expect(echoed.headers.get("x-request-id")).toBe("same-1"); // "same-1, same-1" if both were sent
    const own = await fetch(`${sluice.url}/request-id?own=app-made`, { headers: { "x-request-id": "same-2" } });
    expect(own.headers.get("x-request-id")).toBe("same-2");
  }, 60_000);

  test("X-Request-Id is kept when sane, made when absent or unsafe, and returned; X-Request-Start and Host reach the upstream", async () => {
    const sluice = await startSluice(target);
    const before = Date.now();
    const kept = await fetch(`${sluice.url}/echo`, { headers: { "x-request-id": "req-42.abc", host: "app.example:8443" } });
    const after = Date.now();
    const keptEcho = (await kept.json()) as Echo;
    expect(kept.headers.get("x-request-id")).toBe("req-42.abc");
    expect(keptEcho.headers["x-request-id"]).toBe("req-42.abc");
    expect(keptEcho.headers.host).toBe("app.example:8443");
    expect(keptEcho.headers["x-forwarded-host"]).toBe("app.example:8443");
    const start = /^t=(\d+)$/.exec(keptEcho.headers["x-request-start"] ?? "");
    expect(start).not.toBeNull();
    expect(Number(start![1])).toBeGreaterThanOrEqual(before - 5);
    expect(Number(start![1])).toBeLessThanOrEqual(after + 5);

    for (const incoming of [undefined, "has spaces; and <markup>", "x".repeat(300)]) {
      const response = await fetch(`${sluice.url}/echo`, { headers: incoming === undefined ? {} : { "x-request-id": incoming } });
      const id = response.headers.get("x-request-id");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(((await response.json()) as Echo).headers["x-request-id"]).toBe(id!);
    }
  }, 60_000);

  test("HEAD, 204 and 304 responses carry no body bytes on the wire", async () => {
    const sluice = await startSluice(target);
    for (const [method, path, status] of [["HEAD", "/", 200], ["GET", "/status?code=204", 204], ["GET", "/status?code=304", 304]] as const) {
      const response = await rawHttp(sluice.httpPort, [get(path, sluice.httpPort, {}, method)]);
      expect({ method, path, status: response.status, wire: Buffer.from(response.wire).toString("latin1") }).toEqual({ method, path, status, wire: "" });
      if (status !== 200) expect(response.headers["transfer-encoding"]).toBeUndefined();
    }
    // A keep-alive connection stays usable after a HEAD: no stray bytes precede the next response.
    const head = await fetch(`${sluice.url}/`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect((await (await fetch(`${sluice.url}/`)).text()).length).toBe(1024);
  }, 60_000);

  test("the answer to a HEAD carries a Date, as the GET's does: proxied, a static file, sluice's own 504, the admin listener's", async () => {
    const publicDir = tempDir();
    writeFileSync(join(publicDir, "robots.txt"), "User-agent: *\n");
    const sluice = await startSluice(target, { args: ["--upstream-timeout", "300ms", "--public-dir", publicDir] });
    const cases = [["/", 200], ["/robots.txt", 200], ["/status?code=404", 404], ["/hang", 504], ["admin /readyz", 200], ["admin /livez", 200]] as const;
    for (const [where, status] of cases) {
      const [port, path] = where.startsWith("admin ") ? [sluice.adminPort, where.slice(6)] : [sluice.httpPort, where];
      for (const method of ["GET", "HEAD"]) {
        const before = Date.now() - 1000;
        const response = await rawHttp(port, [get(path, port, {}, method)]);
        const date = Date.parse(response.headers.date ?? "");
        expect({ method, path, status: response.status, dated: date >= before - 1000 && date <= Date.now() + 1000 }).toEqual({ method, path, status, dated: true });
        expect(response.head.match(/^date:/gim)?.length).toBe(1);
      }
    }
  }, 60_000);

  test("an upstream body that fails midway reaches the client cut, never as a clean end, without traces on stderr", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const response = await rawHttp(sluice.httpPort, [get("/stream-error", sluice.httpPort, { "X-Request-Id": "cut-body" })]);
    expect(response.status).toBe(200);
    expect(Buffer.from(response.wire).toString("latin1")).toContain("partial\n");
    expect(response.body).toBeUndefined(); // the framing never completes: the client knows the body is cut
    expect(await fetch(`${sluice.url}/stream-error`).then((r) => r.text()).then(() => "complete", () => "failed")).toBe("failed");
    const record = await accessRecord(sluice, "cut-body");
    expect(record).toMatchObject({ status: 200, outcome: "error", bytesOut: "partial\n".length });
    expect(typeof record.upstreamError).toBe("string");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    // The access record says what happened; the runtime must not dump sluice's source or stack to stderr.
    const own = sluice.stderr.split("\n").filter((line) => line.includes("$bunfs") || /\/src\/[\w/-]+\.ts/.test(line));
    expect(own).toEqual([]);
  }, 60_000);

  test("upstreamError names a refused or reset connection in the same words on both runtimes", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    await rawHttp(sluice.httpPort, [get("/stream-error", sluice.httpPort, { "X-Request-Id": "reset-body" })]);
    expect(await accessRecord(sluice, "reset-body")).toMatchObject({ status: 200, outcome: "error", upstreamError: "connection reset by peer (ECONNRESET)" });
    expect((await fetch(`${sluice.url}/close-listener`)).status).toBe(200);
    await until(() => refuses(sluice.targetPort), 10_000, "the app's port to refuse");
    const refused = await rawHttp(sluice.httpPort, [get("/", sluice.httpPort, { "X-Request-Id": "refused" })]);
    expect(refused.status).toBe(502);
    // Bun's own words were "Failed to connect", Deno's "Connection refused (os error 111)".
    expect(await accessRecord(sluice, "refused")).toMatchObject({ status: 502, upstreamError: "connection refused (ECONNREFUSED)" });
  }, 60_000);

  test("a response without Content-Type reaches the client without one, with its Content-Length", async () => {
    // Uncached: with the cache on, a miss is read to be stored and goes out another way.
    const sluice = await startSluice(target, { args: ["--cache-size", "0"] });
    const response = await rawHttp(sluice.httpPort, [get("/cacheable?untyped", sluice.httpPort)]);
    // Bun's server gives a body of bytes without a type its own: application/octet-stream.
    expect([response.status, response.headers["content-type"], response.headers["content-length"]]).toEqual([200, undefined, "100"]);
    expect(Buffer.from(response.body!).toString()).toStartWith("served 1\n");
  }, 60_000);

  test("an empty Content-Type from the app reaches the client once, as sent, uncached and from the cache", async () => {
    for (const args of [["--cache-size", "0"], []]) {
      const sluice = await startSluice(target, { args });
      for (const pass of ["first", "second"]) {
        const response = await rawHttp(sluice.httpPort, [get("/cacheable?emptytype", sluice.httpPort)]);
        // Bun's server sends bytes with an empty Content-Type and its own beside it.
        const types = response.head.split("\r\n").filter((line) => /^content-type:/i.test(line)).map((line) => line.slice(13).trim());
        expect({ args, pass, status: response.status, types, length: response.headers["content-length"] }).toEqual({ args, pass, status: 200, types: [""], length: "100" });
        expect(Buffer.from(response.body!).toString()).toStartWith("served ");
      }
    }
  }, 60_000);

  test("several Set-Cookie headers stay separate", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, [get("/cookies", sluice.httpPort)]);
    const cookies = response.head.split("\r\n").filter((line) => /^set-cookie:/i.test(line)).map((line) => line.slice(11).trim());
    expect(cookies).toEqual(["a=1; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT", "b=2; Path=/; HttpOnly"]);
  }, 60_000);

  test("redirects are passed through, not followed", async () => {
    const sluice = await startSluice(target);
    const response = await fetch(`${sluice.url}/redirect`, { redirect: "manual" });
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe("/elsewhere");
    expect(await seenByApp(sluice)).not.toContain("/elsewhere");
  }, 60_000);

  test("a Host header that is no host[:port] gets 400 and never reaches the app; so do two Host headers", async () => {
    const sluice = await startSluice(target);
    // Under Deno "Host: app.example/admin" would turn the path /report into /admin/report.
    const hosts = ["app.example/admin", "app example", "app.example@evil.example", "app.example?x", "app.example:port"];
    for (const [i, host] of hosts.entries()) {
      const response = await rawHttp(sluice.httpPort, [`GET /report HTTP/1.1\r\nHost: ${host}\r\nX-Request-Id: bad-host-${i}\r\nConnection: close\r\n\r\n`]);
      expect({ host, status: response.status }).toEqual({ host, status: 400 });
      expect(Buffer.from(response.body!).toString()).toBe("Bad Request: the Host header is not a host name or address with an optional port\n");
      expect(response.headers["x-request-id"]).toBe(`bad-host-${i}`);
      const record = await accessRecord(sluice, `bad-host-${i}`);
      expect(record).toMatchObject({ status: 400, path: expect.any(String), rejected: `invalid Host header ${JSON.stringify(host)}` });
    }
    // Two Host headers: Bun joins them ("a.example, b.example"), Deno refuses them itself.
    const twice = await rawHttp(sluice.httpPort, ["GET /report HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n"]);
    expect(twice.status).toBe(400);
    // Valid ones pass: a name with a port, IPv4, IPv6, and an empty Host (RFC 9112 section
    // 3.2), which goes on as none: the app gets its own address, as without a Host.
    for (const host of ["app.example:8443", "192.0.2.1", "[2001:db8::1]:8080", ""]) {
      const response = await rawHttp(sluice.httpPort, [`GET /echo HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`]);
      expect({ host, status: response.status }).toEqual({ host, status: 200 });
      const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
      expect(new URL(echo.url).pathname).toBe("/echo");
      expect(echo.headers.host).toBe(host || `127.0.0.1:${sluice.targetPort}`);
    }
    expect((await seenByApp(sluice)).filter((path) => path.includes("report"))).toEqual([]);
  }, 60_000);

  test("the access record names a path with characters outside ASCII percent-encoded as UTF-8, as the app gets it, on both runtimes", async () => {
    const sluice = await startSluice(target);
    const head = `GET /caf\u00e9/\u20ac?q=\u00e9 HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: utf8-path\r\nConnection: close\r\n\r\n`;
    expect((await rawHttp(sluice.httpPort, [Buffer.from(head, "utf8")])).status).toBe(200);
    // Deno hands the target over decoded ("/café/€"), Bun percent-encoded.
    expect(await accessRecord(sluice, "utf8-path")).toMatchObject({ path: "/caf%C3%A9/%E2%82%AC", message: "GET /caf%C3%A9/%E2%82%AC 200" });
  }, 60_000);

  // Bun 1.4.5 refuses every control character but HTAB in a header value except DEL (0x7f),
  // which sluice passed on to the app as it came; Deno refuses it itself (400, no handler).
  test("a DEL in a request header value gets 400 and never reaches the app; a body sent with it does not become a request", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, ["GET /echo?del HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: del-value\r\nX-Note: a\x7fb\r\nConnection: close\r\n\r\n"]);
    expect(response.status).toBe(400);
    if (target.name === "binary") {
      expect(await accessRecord(sluice, "del-value")).toMatchObject({ status: 400, rejected: 'control character in the value of "x-note"' });
    }
    // Refused before its body is read: the body is still read past as a body, not as a request.
    const hidden = "GET /echo?hidden HTTP/1.1\r\nHost: a.example\r\n\r\n";
    const withBody = await rawHttp(sluice.httpPort, [
      `POST /echo?del-body HTTP/1.1\r\nHost: a.example\r\nX-Note: a\x7fb\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`,
      "GET /echo?del-next HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    ]);
    expect(withBody.status).toBe(400);
    // A WebSocket handshake with one is refused the same way.
    const handshake = await rawHttp(sluice.httpPort, [
      "GET /ws?del HTTP/1.1\r\nHost: a.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Note: a\x7fb\r\nConnection: close\r\n\r\n",
    ], { until: "complete" });
    expect(handshake.status).toBe(400);
    const seen = await seenByApp(sluice);
    // (/echo?del-next, a request of its own, may reach it: Bun answers it, Deno closes after its 400.)
    expect(seen.filter((path) => ["/echo?del", "/echo?del-body", "/echo?hidden", "/ws?del"].includes(path))).toEqual([]);
  }, 60_000);

  test("a request target with characters outside ASCII reaches the app percent-encoded as UTF-8, never as bytes that end its request line", async () => {
    const sluice = await startSluice(target);
    const ask = async (target: string, id: string): Promise<Echo> => {
      const head = `GET ${target} HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n`;
      const response = await rawHttp(sluice.httpPort, [Buffer.from(head, "utf8")]);
      expect({ id, status: response.status }).toEqual({ id, status: 200 });
      return JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    };
    // The client sends UTF-8 bytes; the binary gets the target from Bun percent-encoded.
    const utf8 = await ask("/echo?q=caf\u00e9-\u20ac-\u{1F600}", "utf8-target");
    expect(new URL(utf8.url).search).toBe("?q=caf%C3%A9-%E2%82%AC-%F0%9F%98%80");
    // Deno hands the target over decoded, and each character went to the app as its code's low
    // byte: U+0100 + c as c, so "\u010d\u010a" as CR LF, which ended the request line and let
    // the client write headers (or a whole request) of its own on the pooled connection.
    const hidden = [..." HTTP/1.1\r\nx-injected: 1\r\nx-request-id: spoofed\r\nx-rest:"].map((c) => String.fromCharCode(0x100 + c.charCodeAt(0))).join("");
    const smuggled = await ask(`/echo?${hidden}`, "smuggling-target");
    expect(smuggled.headers["x-injected"]).toBeUndefined();
    expect(smuggled.headers["x-request-id"]).toBe("smuggling-target");
    expect(new URL(smuggled.url).search).toBe(`?${[...Buffer.from(hidden, "utf8")].map((b) => `%${b.toString(16).toUpperCase()}`).join("")}`);
    // A client's next request on the pooled connection gets its own answer.
    expect(new URL(((await (await fetch(`${sluice.url}/echo?next`)).json()) as Echo).url).search).toBe("?next");
  }, 60_000);

  test("an HTTP/1.0 request without Host reaches the app, with the app's own address as Host", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, ["GET /echo?x=1 HTTP/1.0\r\nX-Request-Id: no-host\r\n\r\n"], { until: "complete" });
    expect(response.status).toBe(200);
    const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    expect(new URL(echo.url).pathname + new URL(echo.url).search).toBe("/echo?x=1");
    expect(echo.headers.host).toBe(`127.0.0.1:${sluice.targetPort}`);
    expect(echo.headers["x-forwarded-host"]).toBeUndefined();
    expect(await accessRecord(sluice, "no-host")).toMatchObject({ status: 200, path: "/echo" });
  }, 60_000);

  test("an absolute-form target of another scheme than http or https gets 400 and never reaches the app", async () => {
    const sluice = await startSluice(target);
    // Bun answers these 400 itself; Deno took them, and the app got "GET /f" for "ftp://a.example/f".
    for (const url of ["ftp://a.example/f?scheme=ftp", "ws://a.example/w?scheme=ws", "foo://a.example/x?scheme=foo", "ftp://a.example?scheme=nopath"]) {
      const response = await rawHttp(sluice.httpPort, [`GET ${url} HTTP/1.1\r\nHost: a.example\r\nX-Request-Id: scheme-${url.slice(0, url.indexOf(":"))}\r\nConnection: close\r\n\r\n`]);
      expect({ url, status: response.status }).toEqual({ url, status: 400 });
    }
    if (target.name === "deno") expect(await accessRecord(sluice, "scheme-ftp")).toMatchObject({ status: 400 });
    expect((await seenByApp(sluice)).filter((path) => path.includes("scheme="))).toEqual([]);
    // http and https (any case) still pass: the target's path and query reach the app.
    for (const url of ["HTTP://a.example/echo?scheme=HTTP", "https://a.example/echo?scheme=https"]) {
      const response = await rawHttp(sluice.httpPort, [`GET ${url} HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n`]);
      expect({ url, status: response.status }).toEqual({ url, status: 200 });
    }
    expect((await seenByApp(sluice)).filter((path) => path.includes("scheme="))).toEqual(["/echo?scheme=HTTP", "/echo?scheme=https"]);
  }, 60_000);

  test("an HTTP/2 request (prior knowledge) reaches the app with its :authority as Host under Deno; the binary refuses it unforwarded", async () => {
    const sluice = await startSluice(target);
    const answer = await h2Request(sluice.httpPort, { ":method": "POST", ":path": "/echo?h2=1", ":authority": "h2.example:8443", "x-request-id": "h2-authority" }, "hello h2");
    if (target.name === "binary") {
      // Bun answers the preface ("PRI * HTTP/2.0") with its own 400 and closes: no request.
      expect(answer.status).toBeUndefined();
      expect((await seenByApp(sluice)).some((path) => path.includes("h2=1"))).toBe(false);
      return;
    }
    // Deno serves HTTP/2 on the same port, and hands the request over without a Host header:
    // the app got its own address as Host, without X-Forwarded-Host.
    expect(answer.status).toBe(200);
    const echo = JSON.parse(answer.body) as Echo;
    expect(new URL(echo.url).pathname + new URL(echo.url).search).toBe("/echo?h2=1");
    expect({ host: echo.headers.host, forwardedHost: echo.headers["x-forwarded-host"], method: echo.method, bodyLength: echo.bodyLength })
      .toEqual({ host: "h2.example:8443", forwardedHost: "h2.example:8443", method: "POST", bodyLength: 8 });
    expect(await accessRecord(sluice, "h2-authority")).toMatchObject({ status: 200, path: "/echo" });
    // Cached per authority: each host's page to its own clients.
    const page = (host: string): Promise<{ status: number | undefined; body: string }> =>
      h2Request(sluice.httpPort, { ":method": "GET", ":path": "/cacheable?echo=host", ":authority": host });
    const [a, b] = [await page("a.example"), await page("b.example")];
    expect([a.body.split("\n")[0], b.body.split("\n")[0]]).toEqual(["served 1 host=a.example", "served 2 host=b.example"]);
  }, 60_000);

  test("a Content-Length sent twice with one value reaches the app once", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, ["POST /echo HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"]);
    // Both runtimes accept it (RFC 9110 section 8.6). Before, the app got "content-length:
    // 5, 5", which a Bun app refuses (400).
    expect(response.status).toBe(200);
    const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    expect({ length: echo.headers["content-length"], bodyLength: echo.bodyLength }).toEqual({ length: "5", bodyLength: 5 });
  }, 60_000);

  test("a GET sent with a body reaches the app without the length of a body it never gets, and the next request is intact", async () => {
    const sluice = await startSluice(target);
    // Both runtimes read a GET's body and drop it (request.body is null).
    const response = await rawHttp(sluice.httpPort, ["GET /echo?with-body HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"]);
    expect(response.status).toBe(200);
    const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    expect({ length: echo.headers["content-length"], bodyLength: echo.bodyLength }).toEqual({ length: "0", bodyLength: 0 });
    // The next request on the pooled upstream connection: before, the app took its first 5
    // bytes for the GET's announced body and answered 400.
    const next = await fetch(`${sluice.url}/echo?next`);
    expect(next.status).toBe(200);
    expect(new URL(((await next.json()) as Echo).url).search).toBe("?next");
  }, 60_000);

  // A length given twice with the same value, which both runtimes take, was passed on as the
  // list "0, 0" when no body went with it: a sender must send one value (RFC 9110 section 8.6),
  // and an app that parses it strictly refused the request.
  test("a Content-Length of 0 given twice reaches the app as one content-length: 0", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, ["PUT /echo?zero-twice HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"]);
    expect(response.status).toBe(200);
    const echo = JSON.parse(Buffer.from(response.body!).toString()) as Echo;
    expect({ length: echo.headers["content-length"], bodyLength: echo.bodyLength }).toEqual({ length: "0", bodyLength: 0 });
  }, 60_000);

  test("a request body with a transfer coding other than chunked gets 501 (Deno) or 400 (Bun) and never reaches the app", async () => {
    const sluice = await startSluice(target);
    const gzipped = gzipSync("hello");
    const chunk = Buffer.concat([Buffer.from(`${gzipped.length.toString(16)}\r\n`), gzipped, Buffer.from("\r\n0\r\n\r\n")]);
    const head = "POST /echo?coded HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: gzip, chunked\r\nX-Request-Id: coded\r\nConnection: close\r\n\r\n";
    const response = await rawHttp(sluice.httpPort, [head, new Uint8Array(chunk)]);
    // Before, Deno passed the gzipped bytes to the app as the body itself.
    if (target.name === "deno") {
      expect(response.status).toBe(501);
      expect(Buffer.from(response.body!).toString()).toBe("Not Implemented: transfer codings other than chunked are not supported\n");
      expect(await accessRecord(sluice, "coded")).toMatchObject({ status: 501, rejected: 'transfer coding "gzip, chunked"' });
    } else expect(response.status).toBe(400);
    expect(await seenByApp(sluice)).not.toContain("/echo?coded");
  }, 60_000);

  test("CONNECT gets 501 and the app is never asked", async () => {
    const sluice = await startSluice(target);
    const response = await rawHttp(sluice.httpPort, ["CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\nX-Request-Id: tunnel\r\n\r\n"], { until: "complete" });
    expect(response.status).toBe(501);
    expect(Buffer.from(response.body!).toString()).toBe("Not Implemented: CONNECT is not supported\n");
    expect(await accessRecord(sluice, "tunnel")).toMatchObject({ method: "CONNECT", status: 501, rejected: "CONNECT" });
    expect(await seenByApp(sluice)).toEqual([]);
  }, 60_000);

  // Deno 2.9.6 ignores a CONNECT's Content-Length (a chunked body it does read) and takes the
  // bytes after the head for the next request: a front proxy that framed them as the body and
  // kept its connection would give that hidden request's answer to its next client. The 501
  // says Connection: close, so none keeps it; Bun, which kept the connection open unanswered
  // after the 501, now closes it, the hidden request unread.
  test("a CONNECT with a body gets 501 with Connection: close; on the binary what follows never reaches the app", async () => {
    const sluice = await startSluice(target);
    const hidden = "GET /echo?hidden HTTP/1.1\r\nHost: a.example\r\n\r\n";
    const request = `CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\nX-Request-Id: tunnel-body\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    // Read to the end on the binary (before, the connection stayed open); Deno never closes a
    // connection for a handler's Connection: close (docs/runtime-notes.md).
    const response = await rawHttp(sluice.httpPort, [request], { until: target.name === "binary" ? "eof" : "complete" });
    expect(response.status).toBe(501);
    expect(response.headers.connection).toBe("close");
    expect(await accessRecord(sluice, "tunnel-body")).toMatchObject({ method: "CONNECT", status: 501, rejected: "CONNECT" });
    if (target.name === "binary") {
      expect(response.end).toBe("eof");
      expect(Buffer.from(response.wire).toString()).toBe("Not Implemented: CONNECT is not supported\n");
      expect(await seenByApp(sluice)).toEqual([]);
    } else {
      // Deno's own parser: the app gets the hidden request. When this starts failing, Deno
      // reads a CONNECT's Content-Length: update docs/runtime-notes.md and this test.
      await until(async () => (await seenByApp(sluice)).includes("/echo?hidden"), 15_000, "the hidden request at the app");
    }
  }, 60_000);

  // Under Deno pipelined requests are answered in order. Bun 1.4.5 closes a connection without
  // a byte as soon as a request arrives behind one whose async answer is pending (uWS,
  // oven-sh/bun#38128): a known limitation of the binary, in the README. When this starts
  // failing on the binary, Bun has fixed it: update the README and this test.
  test("pipelined requests: answered in order under Deno; closed unanswered on the binary (Bun)", async () => {
    const sluice = await startSluice(target);
    const requests = ["/echo?n=1", "/echo?n=2", "/echo?n=3"].map((path, i) =>
      `GET ${path} HTTP/1.1\r\nHost: app.example\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\n`
    );
    const sent = rawHttp(sluice.httpPort, [requests.join("")]);
    if (target.name === "deno") {
      const response = await sent;
      const wire = `${response.head}\r\n\r\n${Buffer.from(response.wire).toString("latin1")}`;
      expect(wire.match(/HTTP\/1\.1 200 OK\r\n/g)).toHaveLength(3); // content-length framed, back to back
      expect([...wire.matchAll(/"url":"http:\/\/app\.example(\/echo\?n=\d)"/g)].map((m) => m[1])).toEqual(["/echo?n=1", "/echo?n=2", "/echo?n=3"]);
    } else {
      const outcome = await sent.then((response) => `answered ${response.status}`, (error: Error) => error.message);
      expect(outcome).toMatch(/^no complete response head in ""$|ECONNRESET/);
    }
  }, 60_000);

  test("the access record has method, path without query, status, duration, bytes, id, client and upstream time", async () => {
    const sluice = await startSluice(target);
    const response = await fetch(`${sluice.url}/echo?token=secret`, {
      method: "POST",
      body: "hello world",
      headers: { "x-request-id": "logged-1" },
    });
    const bytesOut = (await response.arrayBuffer()).byteLength;
    const record = await accessRecord(sluice, "logged-1");
    expect(record).toMatchObject({
      event: "access",
      method: "POST",
      path: "/echo",
      status: 200,
      bytesIn: 11,
      bytesOut,
      requestId: "logged-1",
      clientAddress: "127.0.0.1",
    });
    expect(JSON.stringify(record)).not.toContain("secret");
    expect(typeof record.durationMs).toBe("number");
    expect(typeof record.upstreamMs).toBe("number");
    expect(record.upstreamMs as number).toBeLessThanOrEqual(record.durationMs as number);
    expect(record.durationMs as number).toBeGreaterThanOrEqual(0);
  }, 60_000);
});
