/** @module The compression rules (compressionFor and its parts) and the middleware in memory, with Bun's real compressors. */

import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import zlib from "node:zlib";
import {
  compressedHeaders,
  compression,
  compressionFor,
  type CompressionRules,
  isCompressibleType,
  negotiateEncoding,
  varyOnAcceptEncoding,
} from "../../src/middleware/compression.ts";
import { loadRuntime } from "../../src/runtime/load.ts";
import type { ContentEncoding } from "../../src/runtime/types.ts";

const runtime = await loadRuntime();
const ALL: ContentEncoding[] = ["br", "zstd", "gzip"];
const RULES: CompressionRules = { encodings: ALL, minimumBytes: 1024, disableOnAuth: false };
const HTML = "text/html; charset=utf-8";
const BIG = "<p>sluice</p>\n".repeat(200); // 2,800 bytes

function decode(encoding: string, bytes: Uint8Array): string {
  const buffer = Buffer.from(bytes);
  const plain = encoding === "gzip"
    ? zlib.gunzipSync(buffer)
    : encoding === "br"
    ? zlib.brotliDecompressSync(buffer)
    : encoding === "zstd"
    ? zlib.zstdDecompressSync(buffer)
    : buffer;
  return plain.toString("utf8");
}

function request(headers: Record<string, string> = {}, method = "GET"): Request {
  return new Request("http://sluice.test/page", { method, headers: { "accept-encoding": "gzip, br, zstd", ...headers } });
}

function response(headers: Record<string, string> = {}, body: BodyInit | null = BIG, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": HTML, ...headers } });
}

describe("negotiateEncoding", () => {
  test.each([
    // [Accept-Encoding, available, expected]
    [null, ALL, null],
    ["", ALL, null],
    ["identity", ALL, null],
    ["gzip", ALL, "gzip"],
    ["GZIP", ALL, "gzip"],
    ["x-gzip", ALL, "gzip"],
    ["gzip, deflate, br, zstd", ALL, "br"], // Chrome: equal q, server preference wins
    ["gzip, deflate, br, zstd", ["zstd", "br", "gzip"], "zstd"],
    ["gzip, deflate, br", ["br", "gzip"], "br"],
    ["gzip, br", ["gzip"], "gzip"], // br accepted but not available
    ["br;q=0.5, gzip", ALL, "gzip"], // the client's q-values come first
    ["br;q=0.8, gzip;q=0.9, zstd;q=0.85", ALL, "gzip"],
    ["br;q=0, gzip", ALL, "gzip"], // q=0 excludes
    ["br;q=0.000, gzip;q=0", ALL, null],
    ["gzip;q=0", ALL, null],
    ["*", ALL, "br"],
    ["*;q=0.5, gzip", ALL, "gzip"],
    ["*, br;q=0", ALL, "zstd"],
    ["*;q=0", ALL, null],
    ["identity;q=1, *;q=0", ALL, null],
    ["identity;q=1, gzip;q=0.5", ALL, null], // the client prefers the bytes as they are
    ["gzip;q=0.5, identity;q=0.4", ALL, "gzip"],
    ["gzip, identity", ALL, "gzip"], // a tie goes to compression
    ["br;q=0.9, identity;q=0.8, *;q=0.1", ALL, "br"],
    ["gzip ; q=0.5 , br ; q=0.4", ALL, "gzip"], // whitespace around separators
    ["br;q=2, gzip", ALL, "gzip"], // malformed q counts as 0
    ["br;q=abc, gzip;q=0.1", ALL, "gzip"],
    ["br;level=1", ALL, "br"], // other parameters ignored
    ["deflate, compress", ALL, null],
    [" , ,gzip", ALL, "gzip"],
    ["gzip", [], null],
  ] as [string | null, ContentEncoding[], ContentEncoding | null][])("%p from %p is %p", (header, available, expected) => {
    expect(negotiateEncoding(header, available)).toBe(expected);
  });
});

describe("isCompressibleType", () => {
  test.each([
    "text/html",
    "text/html; charset=utf-8",
    "TEXT/CSS",
    "text/plain",
    "text/csv",
    "text/javascript",
    "application/javascript",
    "application/json",
    "application/json; charset=utf-8",
    "application/ld+json",
    "application/problem+json",
    "application/manifest+json",
    "application/vnd.api+json",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/xhtml+xml",
    "image/svg+xml",
    "application/wasm",
    "application/x-ndjson",
    "application/yaml",
    "application/toml",
    "application/x-www-form-urlencoded",
    "font/ttf",
    "font/otf",
    "image/x-icon",
    "image/vnd.microsoft.icon",
  ])("%s is compressible", (type) => expect(isCompressibleType(type)).toBe(true));
  test.each([
    null,
    "",
    "text/event-stream",
    "text/event-stream; charset=utf-8",
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/avif",
    "image/gif",
    "video/mp4",
    "audio/mpeg",
    "font/woff",
    "font/woff2",
    "application/octet-stream",
    "application/zip",
    "application/gzip",
    "application/pdf",
    "multipart/form-data; boundary=x",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ])("%p is not", (type) => expect(isCompressibleType(type)).toBe(false));
});

describe("compressionFor", () => {
  test("compresses a large compressible response the client accepts", () => {
    expect(compressionFor(request(), response({ "content-length": "2800" }), RULES)).toEqual({ encoding: "br", vary: true });
  });

  test("compresses bodies of unknown length (streamed), whatever their eventual size", () => {
    const stream = new ReadableStream({ start: (c) => (c.enqueue(new TextEncoder().encode("tiny")), c.close()) });
    expect(compressionFor(request(), response({}, stream), RULES).encoding).toBe("br");
  });

  test("the minimum size applies to a known Content-Length", () => {
    expect(compressionFor(request(), response({ "content-length": "1023" }, "x".repeat(1023)), RULES)).toEqual({
      encoding: null,
      vary: false,
      reason: "too-small",
    });
    expect(compressionFor(request(), response({ "content-length": "1024" }, "x".repeat(1024)), RULES).encoding).toBe("br");
    expect(compressionFor(request(), response({ "content-length": "100" }, "x".repeat(100)), { ...RULES, minimumBytes: 0 }).encoding)
      .toBe("br");
    expect(compressionFor(request(), response({ "content-length": "500" }, "x".repeat(500)), { encodings: ALL })).toMatchObject({
      reason: "too-small", // the default minimum is 1 KiB
    });
    // The length counts only when a header says it: a Response made from a string has none
    // until it is sent (Bun and Deno), so it is compressed whatever its size.
    expect(compressionFor(request(), response({}, "x".repeat(10)), RULES).encoding).toBe("br");
  });

  // Every case where the response goes out as it is, with whether Vary: Accept-Encoding is
  // still due (the response qualifies; only this request did not).
  test.each([
    ["101 Switching Protocols", request(), () => new Response(null, { status: 101, headers: { "content-type": HTML } }), "status", false],
    ["204 No Content", request(), () => response({}, null, 204), "status", false],
    ["304 Not Modified without a type", request(), () => new Response(null, { status: 304 }), "content-type", false],
    ["304 Not Modified for a small body", request(), () => response({ "content-length": "10" }, null, 304), "too-small", false],
    ["206 Partial Content", request({ range: "bytes=0-1999" }), () => response({ "content-range": "bytes 0-1999/5000" }, BIG, 206), "partial", false],
    ["no body", request(), () => response({}, null), "no-body", false],
    ["Content-Length: 0", request(), () => response({ "content-length": "0" }, ""), "no-body", false],
    ["Content-Encoding: gzip", request(), () => response({ "content-encoding": "gzip" }, zlib.gzipSync(BIG)), "encoded", false],
    ["Content-Encoding: identity", request(), () => response({ "content-encoding": "identity" }), "encoded", false],
    ["Cache-Control: no-transform", request(), () => response({ "cache-control": "public, No-Transform" }), "no-transform", false],
    ["Content-Digest", request(), () => response({ "content-digest": "sha-256=:AAAA:" }), "digest", false],
    ["Repr-Digest", request(), () => response({ "repr-digest": "sha-512=:AAAA:" }), "digest", false],
    ["Digest (RFC 3230)", request(), () => response({ digest: "SHA-256=AAAA" }), "digest", false],
    ["Content-MD5", request(), () => response({ "content-md5": "AAAA" }), "digest", false],
    ["text/event-stream", request(), () => response({ "content-type": "text/event-stream" }), "content-type", false],
    ["image/png", request(), () => response({ "content-type": "image/png" }), "content-type", false],
    ["no Content-Type", request(), () => new Response(BIG), "content-type", false],
    ["HEAD, small", request({}, "HEAD"), () => response({ "content-length": "10" }, null), "too-small", false],
    ["a Range request answered in full", request({ range: "bytes=0-99" }), () => response(), "range", true],
    ["no Accept-Encoding", new Request("http://sluice.test/"), () => response(), "not-accepted", true],
    ["Accept-Encoding: identity", request({ "accept-encoding": "identity" }), () => response(), "not-accepted", true],
    ["Accept-Encoding: gzip;q=0", request({ "accept-encoding": "gzip;q=0" }), () => response(), "not-accepted", true],
  ] as [string, Request, () => Response, string, boolean][])("never for %s", (_, req, res, reason, vary) => {
    expect(compressionFor(req, res(), RULES)).toEqual({ encoding: null, vary, reason } as never);
  });

  test("a HEAD gets the coding its GET would get, bodies or not (headers only)", () => {
    expect(compressionFor(request({}, "HEAD"), response({ "content-length": "2800" }, null), RULES)).toEqual({ encoding: "br", vary: true });
    expect(compressionFor(request({ "accept-encoding": "identity" }, "HEAD"), response({}, null), RULES)).toMatchObject({ reason: "not-accepted" });
    // Range is ignored for any method but GET (RFC 9110 section 14.2): a HEAD with one is a plain HEAD.
    expect(compressionFor(request({ range: "bytes=0-9" }, "HEAD"), response({ "content-length": "2800" }, null), RULES)).toEqual({ encoding: "br", vary: true });
  });

  test("a 304 gets the decision of the 200 it stands for (its headers only)", () => {
    expect(compressionFor(request(), response({ "content-length": "2800" }, null, 304), RULES)).toEqual({ encoding: "br", vary: true });
  });

  test("without disableOnAuth, credentials and cookies do not matter", () => {
    const req = request({ cookie: "session=1", authorization: "Bearer x" });
    expect(compressionFor(req, response({ "set-cookie": "a=1", "cache-control": "private" }), RULES).encoding).toBe("br");
  });

  describe("disableOnAuth (BREACH guard)", () => {
    const guarded = { ...RULES, disableOnAuth: true };
    test.each([
      ["Cookie", { cookie: "session=1" }],
      ["Authorization", { authorization: "Basic dTpw" }],
      ["X-CSRF-Token", { "x-csrf-token": "abc" }],
    ])("never for a request with %s", (_, headers) => {
      expect(compressionFor(request(headers), response(), guarded)).toEqual({ encoding: null, vary: true, reason: "credentials" });
    });
    test.each([
      ["Set-Cookie", { "set-cookie": "session=2; HttpOnly" }],
      ["Cache-Control: private", { "cache-control": "max-age=0, private" }],
      ["Cache-Control: no-store", { "cache-control": "no-store" }],
      ["Vary: Cookie", { vary: "Accept, Cookie" }],
    ])("never for a response with %s", (_, headers) => {
      expect(compressionFor(request(), response(headers), guarded)).toEqual({ encoding: null, vary: false, reason: "personal" });
    });
    test("anonymous requests and public responses are still compressed", () => {
      expect(compressionFor(request(), response({ "cache-control": "public, max-age=60", vary: "Accept" }), guarded).encoding).toBe("br");
    });
  });
});

describe("headers", () => {
  test.each([
    [null, "Accept-Encoding"],
    ["", "Accept-Encoding"],
    ["Origin", "Origin, Accept-Encoding"],
    ["Origin, Accept", "Origin, Accept, Accept-Encoding"],
    ["accept-encoding", "accept-encoding"],
    ["Origin,Accept-Encoding", "Origin,Accept-Encoding"],
    ["*", "*"],
  ])("Vary %p becomes %p", (before, after) => {
    const headers = new Headers(before === null ? {} : { vary: before });
    varyOnAcceptEncoding(headers);
    expect(headers.get("vary")).toBe(after);
  });

  test("compressed headers: Content-Encoding set, Content-Length and Accept-Ranges gone, ETag weak, the rest kept", () => {
    const original = new Headers({
      "content-type": HTML,
      "content-length": "2800",
      "accept-ranges": "bytes",
      etag: '"v1"',
      vary: "Origin",
      "cache-control": "public, max-age=60",
      "x-request-id": "abc",
    });
    original.append("set-cookie", "a=1");
    original.append("set-cookie", "b=2");
    const headers = compressedHeaders(original, "gzip");
    expect(Object.fromEntries(headers)).toMatchObject({
      "content-type": HTML,
      "content-encoding": "gzip",
      etag: 'W/"v1"',
      vary: "Origin, Accept-Encoding",
      "cache-control": "public, max-age=60",
      "x-request-id": "abc",
    });
    expect(headers.has("content-length")).toBe(false);
    expect(headers.has("accept-ranges")).toBe(false);
    expect(headers.getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(original.get("content-length")).toBe("2800"); // a copy: the original is untouched
  });

  test("a weak ETag stays as it is", () => {
    expect(compressedHeaders(new Headers({ etag: 'W/"v1"' }), "br").get("etag")).toBe('W/"v1"');
  });
});

describe("compression middleware (in memory, Bun's compressors)", () => {
  function app(options: Partial<Parameters<typeof compression>[0]> = {}, handler?: (c: { req: { raw: Request } }) => Response) {
    const hono = new Hono();
    hono.use(compression({ encodings: runtime.compressionEncodings, compressionStream: runtime.compressionStream, ...options }));
    hono.all("*", (c) => (handler ? handler(c) : c.newResponse(BIG, 200, { "content-type": HTML, "content-length": String(BIG.length), etag: '"v1"', vary: "Origin" })));
    return hono;
  }

  test.each(["br", "zstd", "gzip"])("%s: the body decodes to exactly the original, with the headers of the compressed representation", async (encoding) => {
    const res = await app().request("/", { headers: { "accept-encoding": encoding } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-encoding")).toBe(encoding);
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("etag")).toBe('W/"v1"');
    expect(res.headers.get("vary")).toBe("Origin, Accept-Encoding");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBeLessThan(BIG.length / 4);
    expect(decode(encoding, bytes)).toBe(BIG);
  });

  test("HEAD: the compressed representation's headers, no body, nothing compressed", async () => {
    let compressors = 0;
    const counting = (encoding: ContentEncoding) => (compressors++, runtime.compressionStream(encoding));
    const res = await app({ compressionStream: counting }).request("/", { method: "HEAD", headers: { "accept-encoding": "gzip" } });
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(res.headers.get("content-length")).toBeNull();
    expect(res.headers.get("etag")).toBe('W/"v1"');
    expect(res.headers.get("vary")).toBe("Origin, Accept-Encoding");
    expect(res.body).toBeNull();
    expect(compressors).toBe(0);
  });

  test("not accepted: the original body, with Vary", async () => {
    const res = await app().request("/", { headers: { "accept-encoding": "identity" } });
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin, Accept-Encoding");
    expect(res.headers.get("etag")).toBe('"v1"');
    expect(await res.text()).toBe(BIG);
  });

  test("a response with immutable headers (as fetch returns on some runtimes) still gets Vary", async () => {
    class ImmutableHeaders extends Headers {
      override set(): void {
        throw new TypeError("Headers are immutable");
      }
    }
    const res = await app({}, () => {
      const original = response({ "content-length": String(BIG.length) });
      Object.defineProperty(original, "headers", { value: new ImmutableHeaders(original.headers) });
      return original;
    }).request("/", { headers: { "accept-encoding": "identity" } });
    expect(res.headers.get("vary")).toBe("Accept-Encoding");
    expect(await res.text()).toBe(BIG);
  });

  test("Set-Cookie headers survive compression one by one", async () => {
    const res = await app({}, () => {
      const headers = new Headers({ "content-type": HTML });
      headers.append("set-cookie", "a=1; Path=/");
      headers.append("set-cookie", "b=2; Path=/");
      return new Response(BIG, { headers });
    }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(res.headers.get("content-encoding")).toBe("gzip");
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
  });

  test("status and statusText are kept", async () => {
    const res = await app({}, () => new Response(BIG, { status: 404, statusText: "Nope", headers: { "content-type": HTML } }))
      .request("/", { headers: { "accept-encoding": "gzip" } });
    expect([res.status, res.statusText, res.headers.get("content-encoding")]).toEqual([404, "Nope", "gzip"]);
    expect(decode("gzip", new Uint8Array(await res.arrayBuffer()))).toBe(BIG);
  });

  test("enabled: false passes everything through untouched", async () => {
    const res = await app({ enabled: false }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(res.headers.get("vary")).toBe("Origin");
    expect(await res.text()).toBe(BIG);
  });

  test("no encodings available: untouched", async () => {
    const res = await app({ encodings: [] }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(res.headers.get("content-encoding")).toBeNull();
  });

  test("minimumBytes and disableOnAuth reach the rules", async () => {
    const small = await app({ minimumBytes: 10_000 }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(small.headers.get("content-encoding")).toBeNull();
    const withCookie = await app({ disableOnAuth: true }).request("/", { headers: { "accept-encoding": "gzip", cookie: "s=1" } });
    expect(withCookie.headers.get("content-encoding")).toBeNull();
    expect(withCookie.headers.get("vary")).toBe("Origin, Accept-Encoding");
    const anonymous = await app({ disableOnAuth: true }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(anonymous.headers.get("content-encoding")).toBe("gzip");
  });

  test("an upstream body that fails midway makes the compressed body fail too (a cut, not a clean end)", async () => {
    const res = await app({}, () => {
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent) return controller.error(new Error("upstream reset"));
          sent = true;
          controller.enqueue(new TextEncoder().encode(BIG));
        },
      });
      return new Response(body, { headers: { "content-type": HTML } });
    }).request("/", { headers: { "accept-encoding": "gzip" } });
    expect(res.headers.get("content-encoding")).toBe("gzip");
    await expect(res.arrayBuffer()).rejects.toThrow("upstream reset");
  });

  test("a client that goes away cancels the upstream body", async () => {
    const { promise: cancelled, resolve } = Promise.withResolvers<unknown>();
    const res = await app({}, () => {
      const body = new ReadableStream<Uint8Array>({
        pull: (controller) => controller.enqueue(new TextEncoder().encode(BIG)),
        cancel: resolve,
      });
      return new Response(body, { headers: { "content-type": HTML } });
    }).request("/", { headers: { "accept-encoding": "br" } });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.cancel("client gone");
    expect(await cancelled).toBe("client gone");
  });

  test.each(runtime.compressionEncodings)("%s: a reader that goes away while the last bytes are compressed: the close settles, nothing is thrown", async (encoding) => {
    // What wrk does at the end of a run: the connection closes while the compressor finishes.
    const pair = runtime.compressionStream(encoding);
    const writer = pair.writable.getWriter();
    const reader = pair.readable.getReader();
    const read = reader.read();
    await writer.write(new TextEncoder().encode(BIG));
    await read;
    const closing = writer.close().then(() => "closed", () => "close rejected");
    await reader.cancel("client gone");
    expect(["closed", "close rejected"]).toContain(await closing);
  });
});
