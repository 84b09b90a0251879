/**
 * @module compression: compresses response bodies with br, zstd or gzip when the client
 * accepts it and the response is worth it, streaming as the body streams (thruster parity;
 * rules in docs/compression.md). `compressionFor` is the whole decision, free of I/O.
 */

import type { Context, MiddlewareHandler, Next } from "hono";
import type { ProxyEnv } from "../proxy.ts";
import { answerOf, replaceResponse } from "./replace-response.ts";
import type { ContentEncoding } from "../runtime/types.ts";

export interface CompressionRules {
  /**
   * Codings sluice may use, most preferred first (the runtime's `compressionEncodings`). A
   * client's q-values decide first; equal ones go to the earlier coding here.
   */
  encodings: readonly ContentEncoding[];
  /** Bodies whose Content-Length is below this are sent as they are; unknown lengths are compressed. @default 1024 */
  minimumBytes?: number;
  /** BREACH guard: never compress for requests with credentials or for personal responses. @default false */
  disableOnAuth?: boolean;
}

export interface CompressionOptions extends CompressionRules {
  /** @default true */
  enabled?: boolean;
  /** Makes one body's compressor, flushing after every chunk (the runtime's `compressionStream`). */
  compressionStream: (encoding: ContentEncoding) => ReadableWritablePair<Uint8Array, Uint8Array>;
}

/** Why a response is sent as it is. */
export type SkipReason =
  | "status" // 1xx, 204: no body by definition
  | "partial" // 206: a byte range of the identity representation
  | "no-body"
  | "encoded" // Content-Encoding already present
  | "no-transform" // Cache-Control: no-transform (RFC 9111 section 5.2.2.6)
  | "digest" // a digest of the bytes as sent (Content-Digest, Repr-Digest ...), which compressing would make false
  | "content-type" // not in the compressible list (text/event-stream never is)
  | "too-small"
  | "personal" // disableOnAuth: Set-Cookie, Cache-Control private/no-store, or Vary: Cookie
  | "range" // the request is a GET that asks for a byte range
  | "credentials" // disableOnAuth: Cookie, Authorization or X-CSRF-Token on the request
  | "not-accepted"; // no available coding is acceptable to the client

/**
 * What to do with one response. `vary` says that a GET of it with another Accept-Encoding
 * could have been answered differently, so caches must key on Accept-Encoding. For a HEAD
 * or a 304, an encoding means the headers of that coding, without compressing anything.
 */
export type CompressionDecision =
  | { encoding: ContentEncoding; vary: true }
  | { encoding: null; vary: boolean; reason: SkipReason };

/**
 * Media types worth compressing: text/* except text/event-stream; JavaScript, JSON, XML,
 * YAML, TOML, WebAssembly, form data; any type with a +json, +xml, +yaml or +text suffix
 * (image/svg+xml, application/ld+json, application/rss+xml ...); uncompressed fonts (ttf,
 * otf, eot) and icons/bitmaps. Images, audio, video, archives and woff/woff2 are already compressed.
 */
const COMPRESSIBLE = new Set([
  "application/javascript",
  "application/ecmascript",
  "application/x-javascript",
  "application/json",
  "application/x-ndjson",
  "application/xml",
  "application/xml-dtd",
  "application/yaml",
  "application/x-yaml",
  "application/toml",
  "application/wasm",
  "application/graphql",
  "application/x-www-form-urlencoded",
  "application/rtf",
  "application/x-sh",
  "application/postscript",
  "application/vnd.ms-fontobject",
  "application/x-font-ttf",
  "font/ttf",
  "font/otf",
  "font/collection",
  "image/bmp",
  "image/x-icon",
  "image/vnd.microsoft.icon",
]);

/** True when a Content-Type value names a type worth compressing. */
export function isCompressibleType(contentType: string | null): boolean {
  if (!contentType) return false;
  const semicolon = contentType.indexOf(";");
  const type = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (type.startsWith("text/")) return type !== "text/event-stream";
  return COMPRESSIBLE.has(type) || /^[a-z]+\/[^\s/]+\+(?:json|xml|yaml|text)$/.test(type);
}

/** A q-value (RFC 9110 section 12.4.2); anything malformed counts as 0 (not acceptable). */
function qValue(text: string): number {
  return /^\s*(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*$/.test(text) ? Number(text) : 0;
}

/**
 * The coding to answer with, from an Accept-Encoding value (RFC 9110 section 12.5.3): the
 * available coding with the highest q-value above 0, ties to the earlier one in `available`,
 * unless `identity` is named with a higher q-value than it (`identity;q=1, gzip;q=0.5`: the
 * client prefers the bytes as they are). `*` covers codings not named; `x-gzip` means gzip;
 * no header or an empty one means identity.
 */
export function negotiateEncoding(acceptEncoding: string | null, available: readonly ContentEncoding[]): ContentEncoding | null {
  if (!acceptEncoding) return null;
  const weights = new Map<string, number>();
  for (const item of acceptEncoding.split(",")) {
    const [name = "", ...params] = item.split(";");
    let coding = name.trim().toLowerCase();
    if (coding === "") continue;
    if (coding === "x-gzip") coding = "gzip";
    let q = 1;
    for (const param of params) {
      const equals = param.indexOf("=");
      if (param.slice(0, equals).trim().toLowerCase() === "q") q = qValue(param.slice(equals + 1));
    }
    if (!weights.has(coding)) weights.set(coding, q);
  }
  const other = weights.get("*") ?? 0;
  let best: ContentEncoding | null = null;
  let bestQ = 0;
  for (const encoding of available) {
    const q = weights.get(encoding) ?? other;
    if (q > bestQ) [best, bestQ] = [encoding, q];
  }
  return bestQ < (weights.get("identity") ?? 0) ? null : best;
}

/**
 * Fields that state a digest of the bytes the response carries: RFC 9530's (of the content,
 * and of the representation data, which includes its content coding) and the older Digest
 * (RFC 3230) and Content-MD5. Compressed, the bytes no longer match them, and a client that
 * checks them refuses a response that is fine; they cannot be dropped either (they are there
 * to be checked), so such a response is sent as it is, as no-transform asks.
 */
function statesDigest(headers: Headers): boolean {
  return headers.has("content-digest") || headers.has("repr-digest") || headers.has("digest") || headers.has("content-md5");
}

/** True when a comma-separated header value holds one of `tokens` (case-insensitive). */
function hasToken(value: string | null, tokens: readonly string[]): boolean {
  if (!value) return false;
  return value.split(",").some((item) => tokens.includes(item.split("=")[0]!.trim().toLowerCase()));
}

/** The decisions not to compress, made once (one is returned per response). */
const SKIPS = [new Map<SkipReason, CompressionDecision>(), new Map<SkipReason, CompressionDecision>()] as const;
function skip(reason: SkipReason, vary = false): CompressionDecision {
  const made = SKIPS[vary ? 1 : 0];
  let decision = made.get(reason);
  if (decision === undefined) made.set(reason, decision = Object.freeze({ encoding: null, vary, reason }));
  return decision;
}

/** Decides whether and how to compress `response`, sent in answer to `request`. */
export function compressionFor(
  request: Request,
  response: Response,
  { encodings, minimumBytes = 1024, disableOnAuth = false }: CompressionRules,
): CompressionDecision {
  const { status, headers } = response;
  if (status < 200 || status === 204) return skip("status");
  if (status === 206) return skip("partial");
  const length = headers.get("content-length");
  if (length !== null && Number(length) === 0) return skip("no-body");
  if (headers.has("content-encoding")) return skip("encoded");
  const cacheControl = headers.get("cache-control");
  if (hasToken(cacheControl, ["no-transform"])) return skip("no-transform");
  if (!isCompressibleType(headers.get("content-type"))) return skip("content-type");
  if (length !== null && Number(length) < minimumBytes) return skip("too-small");
  if (statesDigest(headers)) return skip("digest");
  if (disableOnAuth && (headers.has("set-cookie") || hasToken(cacheControl, ["private", "no-store"]) || hasToken(headers.get("vary"), ["cookie"]))) {
    return skip("personal");
  }
  // From here on the response itself qualifies: whatever this client gets, Vary says why.
  // Only a GET's Range counts: any other method's is ignored (RFC 9110 section 14.2), so a
  // HEAD with one gets the headers of the GET without it, compressed ones included.
  if (request.method === "GET" && request.headers.has("range")) return skip("range", true);
  if (disableOnAuth && ["cookie", "authorization", "x-csrf-token"].some((name) => request.headers.has(name))) {
    return skip("credentials", true);
  }
  const encoding = negotiateEncoding(request.headers.get("accept-encoding"), encodings);
  if (encoding === null) return skip("not-accepted", true);
  // A HEAD gets the headers its GET would have (RFC 9110 section 9.3.2), and never the
  // identity length of a body its GET would send compressed (section 8.6).
  // A 304 likewise carries the validators and Vary of the 200 it stands for (section 15.4.5).
  if (request.method === "HEAD" || status === 304) return { encoding, vary: true };
  // Read last: on Deno, reading `body` turns a Response made from a string into a stream,
  // which Deno.serve then sends at a third of the speed (measured with bench/compression.ts).
  return response.body === null ? skip("no-body") : { encoding, vary: true };
}

/** Adds Accept-Encoding to Vary unless it (or `*`) is there already. */
export function varyOnAcceptEncoding(headers: Headers): void {
  const vary = headers.get("vary");
  if (vary === null || vary.trim() === "") headers.set("vary", "Accept-Encoding");
  else if (!hasToken(vary, ["accept-encoding", "*"])) headers.set("vary", `${vary}, Accept-Encoding`);
}

/**
 * The headers of the compressed representation: Content-Encoding set, Content-Length and
 * Accept-Ranges gone (length and byte ranges were those of the identity bytes), a strong
 * ETag made weak (the bytes differ; RFC 9110 section 8.8.3), Vary extended.
 */
export function compressedHeaders(headers: Headers, encoding: ContentEncoding): Headers {
  const compressed = new Headers(headers);
  compressed.set("content-encoding", encoding);
  compressed.delete("content-length");
  compressed.delete("accept-ranges");
  const etag = compressed.get("etag");
  if (etag !== null && !etag.startsWith("W/")) compressed.set("etag", `W/${etag}`);
  varyOnAcceptEncoding(compressed);
  return compressed;
}

export function compression({ enabled = true, compressionStream, ...rules }: CompressionOptions): MiddlewareHandler {
  if (!enabled || rules.encodings.length === 0) {
    return function compression(_c, next) {
      return next();
    };
  }
  // Works in Hono's compose (the answer is in c.res after next()) and in middleware/chain.ts
  // (next() gives the answer, c.res is unset): it reads the answer from either, and both sets
  // and returns what replaces it. Not async: no promise of its own per request.
  const answer = (c: Context, answered: Response | void): Response => {
    const response = answerOf(c, answered);
    // The exchange's request when there is one (it spares Hono's request wrapper per request).
    const request = (c.env as Partial<ProxyEnv["Bindings"]> | undefined)?.exchange?.request ?? c.req.raw;
    const decision = compressionFor(request, response, rules);
    if (decision.encoding === null) {
      if (!decision.vary) return response;
      try {
        // In place when the headers allow it: on Bun an untouched fetched Response is sent faster.
        varyOnAcceptEncoding(response.headers);
        return response;
      } catch {
        const headers = new Headers(response.headers);
        varyOnAcceptEncoding(headers);
        return replaceResponse(c, new Response(response.body, { status: response.status, statusText: response.statusText, headers }));
      }
    }
    const headers = compressedHeaders(response.headers, decision.encoding);
    if (request.method === "HEAD" || response.status === 304) {
      // A 304 describes no content of its own: it names the still valid representation.
      if (response.status === 304) headers.delete("content-encoding");
      response.body?.cancel().catch(() => {});
      return replaceResponse(c, new Response(null, { status: response.status, statusText: response.statusText, headers }));
    }
    const body = response.body!.pipeThrough(compressionStream(decision.encoding));
    return replaceResponse(c, new Response(body, { status: response.status, statusText: response.statusText, headers }));
  };
  return function compression(c: Context, next: Next): Promise<Response | void> {
    const rest = next() as unknown as Response | Promise<Response | void>;
    return (rest instanceof Response ? answer(c, rest) : rest.then((answered) => answer(c, answered))) as Promise<Response>;
  };
}
