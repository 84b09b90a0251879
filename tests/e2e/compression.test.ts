/**
 * @module Compression through sluice, on the binary and under Deno: the client's accepted
 * coding, bytes that decode exactly, Vary, streamed bodies that stay streamed, and
 * --compression=false. The rules one by one are in tests/unit/compression.test.ts.
 */

import { describe, expect, test } from "bun:test";
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from "node:zlib";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { BUN, ROOT, startSluice, TARGETS, tempDir } from "../harness.ts";

const PAGE_BYTES = 102_400;
const decoders: Record<string, (bytes: Uint8Array) => Uint8Array> = {
  gzip: gunzipSync,
  br: brotliDecompressSync,
  zstd: zstdDecompressSync,
};

/** The response's bytes exactly as sent (fetch would decode them). */
async function raw(url: string, acceptEncoding: string) {
  const response = await fetch(url, { headers: { "accept-encoding": acceptEncoding }, decompress: false } as RequestInit);
  return { response, bytes: new Uint8Array(await response.arrayBuffer()) };
}

describe.each(TARGETS)("compression ($name)", (target) => {
  test("a page comes in the best coding the client accepts and decodes exactly; Vary says why", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const original = await (await fetch(`${sluice.url}/page?bytes=${PAGE_BYTES}`, { headers: { "accept-encoding": "identity" } })).text();
    expect(original).toHaveLength(PAGE_BYTES);
    for (const accept of ["gzip", "br", "gzip, deflate, br, zstd"]) {
      const { response, bytes } = await raw(`${sluice.url}/page?bytes=${PAGE_BYTES}`, accept);
      const encoding = response.headers.get("content-encoding")!;
      expect(accept.split(", ")).toContain(encoding);
      expect(response.headers.get("vary")).toContain("Accept-Encoding");
      expect(response.headers.get("content-length")).toBeNull();
      expect(bytes.length).toBeLessThan(PAGE_BYTES / 5);
      expect(new TextDecoder().decode(decoders[encoding]!(bytes))).toBe(original);
    }
    // Small bodies and clients that accept nothing get the original bytes.
    expect((await raw(`${sluice.url}/page?bytes=500`, "gzip")).response.headers.get("content-encoding")).toBeNull();
    for (const accept of ["identity", "identity;q=1, gzip;q=0.5"]) {
      const identity = await raw(`${sluice.url}/page?bytes=${PAGE_BYTES}`, accept);
      expect(identity.response.headers.get("content-encoding")).toBeNull();
      expect(identity.bytes.length).toBe(PAGE_BYTES);
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a HEAD gets the headers of the compressed GET: Content-Encoding, Vary, no Content-Length", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const head = await fetch(`${sluice.url}/page?bytes=${PAGE_BYTES}`, { method: "HEAD", headers: { "accept-encoding": "gzip" } });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-encoding")).toBe("gzip");
    expect(head.headers.get("vary")).toBe("Accept-Encoding");
    expect(head.headers.get("content-length")).toBeNull();
    expect(await head.text()).toBe("");
    // Without an acceptable coding, the identity length, as the GET would have.
    const identity = await fetch(`${sluice.url}/page?bytes=${PAGE_BYTES}`, { method: "HEAD", headers: { "accept-encoding": "identity" } });
    expect(identity.headers.get("content-encoding")).toBeNull();
    expect(identity.headers.get("content-length")).toBe(String(PAGE_BYTES));
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a streamed body stays streamed: its first chunk arrives, decodable, before the next is sent", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const started = performance.now();
    const response = await fetch(`${sluice.url}/stream?chunks=3&gap=1500`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    expect(response.headers.get("content-encoding")).toBe("gzip");
    const reader = response.body!.pipeThrough(new DecompressionStream("gzip")).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("chunk 1\n");
    expect(performance.now() - started).toBeLessThan(1400); // the app sends chunk 2 at 1.5 s
    let rest = "";
    for (let part = await reader.read(); !part.done; part = await reader.read()) rest += new TextDecoder().decode(part.value);
    expect(rest).toBe("chunk 2\nchunk 3\n");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a response stating a digest of its bytes (Content-Digest) goes as it is: compressed, it would no longer match", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const { response, bytes } = await raw(`${sluice.url}/page?bytes=${PAGE_BYTES}&digest`, "gzip, deflate, br, zstd");
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(response.headers.get("vary")).toBeNull();
    const digest = response.headers.get("content-digest");
    expect(digest).toBe(`sha-256=:${createHash("sha256").update(bytes).digest("base64")}:`);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("sluice's own short answers (413, X-Sendfile's 404) carry their length and stay uncompressed under the minimum, as the app's do", async () => {
    const dir = tempDir();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--max-request-body", "10", "--x-sendfile-dirs", dir],
      child: [BUN, join(ROOT, "tests/fixtures/files-app.ts")],
    });
    const browser = { "accept-encoding": "gzip, deflate, br, zstd" };
    const missing = `${sluice.url}/send?path=${encodeURIComponent(join(dir, "missing.txt"))}`;
    const answers = [
      [await fetch(sluice.url, { method: "POST", body: "x".repeat(100), headers: browser, decompress: false } as RequestInit), 413, "Payload Too Large\n"],
      [await fetch(missing, { headers: browser, decompress: false } as RequestInit), 404, "Not Found\n"],
      [await fetch(missing, { method: "HEAD", headers: browser }), 404, ""],
    ] as const;
    for (const [response, status, text] of answers) {
      expect([response.status, response.headers.get("content-encoding")]).toEqual([status, null]);
      expect(response.headers.get("content-length")).toBe(String(status === 404 ? "Not Found\n".length : text.length));
      expect(await response.text()).toBe(text);
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("--compression=false sends every body as the app did", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--compression=false"] });
    const { response, bytes } = await raw(`${sluice.url}/page?bytes=${PAGE_BYTES}`, "gzip, br, zstd");
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(bytes.length).toBe(PAGE_BYTES);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);
});
