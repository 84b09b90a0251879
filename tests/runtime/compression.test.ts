/**
 * @module Compression on real servers and real bytes, on both runtimes: the compression app
 * (tests/runtime/fixtures/compression-app.ts) served by Bun in this process and by Deno in a
 * child; a raw client (no decoding of its own) checks headers, exact bytes after decoding,
 * and that a streamed body's first chunk arrives decodable before the second is sent.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import zlib from "node:zlib";
import { loadRuntime } from "../../src/runtime/load.ts";
import type { HttpListener } from "../../src/runtime/types.ts";
import { trackUntilEnd } from "../cleanup.ts";
import { DENO, ROOT } from "../harness.ts";
import { compressionApp, FIRST, page, SECOND } from "./fixtures/compression-app.ts";

const RUNNER = join(ROOT, "tests/runtime/fixtures/compression-server.ts");
const PAGE = page();
const DEADLINE_MS = 20_000;

interface Served {
  base: string;
  encodings: string[];
  stop(): Promise<void>;
}

async function serveOnBun(): Promise<Served> {
  const runtime = await loadRuntime();
  const app = compressionApp(runtime);
  const listener: HttpListener = await runtime.serve({ hostname: "127.0.0.1", port: 0, handler: (request) => app.fetch(request) });
  return { base: `http://127.0.0.1:${listener.port}`, encodings: [...runtime.compressionEncodings], stop: () => listener.close() };
}

async function serveOnDeno(): Promise<Served> {
  const proc = Bun.spawn([DENO, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", RUNNER], {
    cwd: ROOT,
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  trackUntilEnd(proc.pid);
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`the Deno runner exited before printing its port (code ${await proc.exited})`);
    text += new TextDecoder().decode(value);
  }
  const { port, encodings } = JSON.parse(text.slice(0, text.indexOf("\n"))) as { port: number; encodings: string[] };
  return {
    base: `http://127.0.0.1:${port}`,
    encodings,
    async stop() {
      proc.stdin.end(); // its lifeline: it exits when stdin closes
      await proc.exited;
    },
  };
}

/** A streaming decoder as a client has one: bytes in as they arrive, text out as soon as it can be decoded. */
function decoder(encoding: string) {
  const z = encoding === "gzip"
    ? zlib.createGunzip()
    : encoding === "br"
    ? zlib.createBrotliDecompress()
    : encoding === "zstd"
    ? zlib.createZstdDecompress()
    : undefined;
  const utf8 = new TextDecoder();
  let text = "";
  z?.on("data", (chunk: Buffer) => (text += utf8.decode(chunk, { stream: true })));
  return {
    get text() {
      return text;
    },
    /** Decodes `bytes` and everything before them, as far as they go. */
    async push(bytes: Uint8Array): Promise<void> {
      if (!z) return void (text += utf8.decode(bytes, { stream: true }));
      await new Promise<void>((resolve, reject) => z.write(bytes, (error) => (error ? reject(error) : resolve())));
      await new Promise<void>((resolve) => z.flush(() => resolve()));
    },
  };
}

/** Fetches without any decoding on the client's side (raw bytes as sent). */
function rawFetch(
  url: string,
  acceptEncoding: string | null,
  init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  const headers = { ...init.headers, ...(acceptEncoding === null ? {} : { "accept-encoding": acceptEncoding }) };
  // With decompress: false Bun's fetch adds no Accept-Encoding of its own (docs/runtime-notes.md).
  return fetch(url, { ...init, headers, decompress: false } as RequestInit);
}

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${DEADLINE_MS} ms: ${what}`)), DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const TARGETS = [
  { name: "bun", serve: serveOnBun, expected: ["zstd", "br", "gzip"] },
  { name: "deno", serve: serveOnDeno, expected: ["br", "gzip"] },
];

describe.each(TARGETS)("compression on $name", ({ serve, expected }) => {
  let served: Served;
  beforeAll(async () => {
    served = await serve();
  });
  afterAll(() => served.stop());

  test("the runtime offers the codings measured for it", () => {
    expect(served.encodings).toEqual(expected);
  });

  test.each(["br", "zstd", "gzip"])("a 100 KiB page with %s decodes to exactly the original", async (encoding) => {
    if (!served.encodings.includes(encoding)) return;
    const res = await rawFetch(`${served.base}/page`, encoding);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-encoding")).toBe(encoding);
    expect(res.headers.get("vary")).toBe("Accept-Encoding");
    expect(res.headers.get("etag")).toBe('W/"page-1"');
    expect(res.headers.get("content-length")).toBeNull();
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBeLessThan(PAGE.length / 4);
    const decode = decoder(encoding);
    await decode.push(bytes);
    expect(decode.text).toBe(PAGE);
  });

  test("a browser's Accept-Encoding gets the preferred coding, an unaccepting client the original bytes", async () => {
    const browser = await rawFetch(`${served.base}/page`, "gzip, deflate, br, zstd");
    expect(browser.headers.get("content-encoding")).toBe(served.encodings[0]!);
    await browser.arrayBuffer();
    for (const acceptEncoding of [null, "identity", "br;q=0, gzip;q=0, zstd;q=0"]) {
      const res = await rawFetch(`${served.base}/page`, acceptEncoding);
      expect(res.headers.get("content-encoding")).toBeNull();
      expect(res.headers.get("content-length")).toBe(String(PAGE.length));
      expect(res.headers.get("vary")).toBe("Accept-Encoding");
      expect(res.headers.get("etag")).toBe('"page-1"');
      expect(await res.text()).toBe(PAGE);
    }
  });

  test("a HEAD gets its GET's headers and nothing compressed; never for Range requests or event streams", async () => {
    const head = await rawFetch(`${served.base}/page`, "gzip", { method: "HEAD" });
    expect([head.status, head.headers.get("content-encoding"), head.headers.get("vary"), head.headers.get("etag")])
      .toEqual([200, "gzip", "Accept-Encoding", 'W/"page-1"']);
    expect(await head.text()).toBe("");
    const ranged = await rawFetch(`${served.base}/page`, "gzip", { headers: { range: "bytes=0-9" } });
    expect([ranged.headers.get("content-encoding"), ranged.headers.get("vary")]).toEqual([null, "Accept-Encoding"]);
    expect(await ranged.text()).toBe(PAGE); // this app ignores Range: the whole body, as it is
    const events = await rawFetch(`${served.base}/events`, "gzip, br");
    expect(events.headers.get("content-encoding")).toBeNull();
    expect(await events.text()).toBe("data: one\n\n".repeat(200));
  });

  test.each(["br", "zstd", "gzip"])("%s: a streamed body's first chunk reaches the client, decodable, before the second is sent", async (encoding) => {
    if (!served.encodings.includes(encoding)) return;
    const id = `${encoding}-${crypto.randomUUID()}`;
    const res = await rawFetch(`${served.base}/stream/${id}`, encoding);
    expect(res.headers.get("content-encoding")).toBe(encoding);
    const reader = res.body!.getReader();
    const decode = decoder(encoding);
    // Each raw chunk is decoded as it arrives; the server holds SECOND until we release it.
    await withDeadline((async () => {
      while (!decode.text.includes(FIRST)) {
        const { done, value } = await reader.read();
        if (done) throw new Error("the body ended before its first chunk could be decoded");
        await decode.push(value);
      }
    })(), `the first chunk, ${encoding}-compressed, was not decodable while the server held the second back`);
    expect(decode.text).toBe(FIRST);
    const release = await fetch(`${served.base}/release/${id}`, { method: "POST" });
    expect(release.status).toBe(204);
    await withDeadline((async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await decode.push(value);
      }
    })(), "the rest of the stream");
    expect(decode.text).toBe(FIRST + SECOND);
  });

  test("clients that go away mid-body leave the server serving", async () => {
    // Cut at every stage: before the body, after some of it, while a stream waits for more.
    const streams: string[] = [];
    const cuts = served.encodings.flatMap((encoding) =>
      Array.from({ length: 10 }, async (_, i) => {
        const controller = new AbortController();
        const id = `cut-${encoding}-${i}`;
        if (i % 2) streams.push(id);
        const res = await rawFetch(`${served.base}${i % 2 ? `/stream/${id}` : "/page"}`, encoding, { signal: controller.signal });
        const reader = res.body!.getReader();
        for (let read = 0; read < (i % 2 ? i % 4 > 1 ? 1 : 0 : i % 3); read++) await reader.read();
        controller.abort();
        await reader.read().catch(() => {});
      })
    );
    await withDeadline(Promise.all(cuts), "the cut requests");
    // Let the held streams go on: their sources then find nobody reading.
    for (const id of streams) await (await fetch(`${served.base}/release/${id}`, { method: "POST" })).arrayBuffer();
    for (const encoding of served.encodings) {
      const res = await rawFetch(`${served.base}/page`, encoding);
      const decode = decoder(encoding);
      await decode.push(new Uint8Array(await res.arrayBuffer()));
      expect(decode.text).toBe(PAGE);
    }
  });
});
