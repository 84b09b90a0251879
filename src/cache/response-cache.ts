/**
 * @module ResponseCache: an in-memory store of public HTTP responses for a shared cache
 * (RFC 9111), with Vary, size accounting, LRU eviction and expiry on an injectable clock.
 * Pure: no I/O, no runtime APIs. middleware/cache.ts decides when to look up and store.
 */

import { connectionNamed, HOP_BY_HOP, SET_BY_THE_PROXY } from "../forwarded-headers.ts";
import { requestTarget } from "../request-target.ts";

/** What the cache reads from a request (a Request fits). */
export interface CacheRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
}

/**
 * The URL of the resource a request is for, as the app sees it: the Host header, then the
 * target. Request.url's authority can come from elsewhere: under Deno from an absolute-form
 * target ("GET http://victim.example/page" with "Host: evil.example"), and the app's answer
 * for evil.example stored under victim.example's URL would reach victim.example's visitors.
 * A request without a Host header (HTTP/1.0; HTTP/1.1 too under Deno), or with an empty
 * one, has no host: the app gets no Host either and answers for its own address, whatever
 * authority the target names ("http:///page").
 *
 * `fromTrustedProxy` says whether the client is a trusted proxy (forwarded-headers.ts's
 * trustsForwarding); it is asked only when the request has X-Forwarded-Proto or -Host.
 * Then the app is told the scheme and host that proxy forwards, and answers for them (an
 * http-to-https redirect, absolute links), so they are part of the URL.
 */
export function resourceUrl(request: CacheRequest, fromTrustedProxy?: () => boolean): string {
  const headers = request.headers;
  const lowerHost = headers.get("host")?.toLowerCase() ?? "";
  const target = requestTarget(request.url) ?? "";
  if (fromTrustedProxy !== undefined) {
    const proto = headers.get("x-forwarded-proto");
    const forwardedHost = headers.get("x-forwarded-host");
    if ((proto !== null || forwardedHost !== null) && fromTrustedProxy()) return forwardedUrl(request, lowerHost, target, proto, forwardedHost);
  }
  return `http://${lowerHost}${target}`;
}

/**
 * The URL the app is told through X-Forwarded-Proto and -Host, as upstreamRequestHeaders
 * forwards them from a trusted proxy (a header the request's Connection names is dropped);
 * the Host header too when it differs, as an app may read either.
 */
function forwardedUrl(request: CacheRequest, host: string, target: string, proto: string | null, forwardedHost: string | null): string {
  const dropped = connectionNamed(request.headers.get("connection"));
  if (dropped?.has("x-forwarded-proto")) proto = null;
  if (dropped?.has("x-forwarded-host")) forwardedHost = null;
  const toldHost = forwardedHost?.toLowerCase() ?? host;
  const url = `${proto?.trim().toLowerCase() ?? "http"}://${toldHost}${target}`;
  return toldHost === host ? url : `${url} (Host: ${host})`;
}

/** What the cache reads from a response's head (a Response fits). */
export interface CacheResponseHead {
  readonly status: number;
  readonly headers: Headers;
}

/** A stored response. Immutable: every hit builds its own Response from it. */
export interface CacheEntry {
  readonly key: string;
  readonly status: number;
  /**
   * The response's headers less hop-by-hop and per-request ones; Content-Length is the body's.
   * Never modified: each hit copies them (copying a Headers is faster than building one).
   */
  readonly headers: Headers;
  readonly body: Uint8Array<ArrayBuffer>;
  readonly etag: string | null;
  readonly lastModified: string | null;
  /** Clock time (ms) when it was stored. */
  readonly storedAt: number;
  /** Clock time (ms) from which it is stale and never served again. */
  readonly expiresAt: number;
  /** The Age (s) the response already had when it was stored (RFC 9111 section 4.2.3). */
  readonly initialAge: number;
  /** Bytes counted against the cache's limits. */
  readonly size: number;
}

export interface ResponseCacheOptions {
  /**
   * Most bytes the whole cache holds; older entries are evicted to make room.
   * @default 67108864 (64 MiB, as thruster's CACHE_SIZE)
   */
  maxSize?: number;
  /**
   * Largest body stored, as --max-cache-item-size says; larger responses pass uncached.
   * (The entry's headers and key count towards maxSize, not towards this.)
   * @default 1048576 (1 MiB, as thruster's MAX_CACHE_ITEM_SIZE)
   */
  maxItemSize?: number;
  /** The clock, in milliseconds. @default Date.now */
  now?: () => number;
}

/**
 * What a request may do with the cache:
 * - "use": answered from the cache when a fresh entry matches; else forwarded and stored.
 * - "refresh": never answered from the cache, but the response is stored (Cache-Control:
 *   no-cache on the request, RFC 9111 section 5.2.1.4: the stored one must not be used
 *   without validating it, and a full response is the validation this cache can do).
 * - "bypass": the cache is neither read nor written.
 */
export type RequestPolicy = "use" | "refresh" | "bypass";

/** Bytes counted per entry on top of its body, headers and key: the bookkeeping around them. */
export const ENTRY_OVERHEAD = 256;

/** Headers that describe one connection or one exchange, never stored. */
const NOT_STORED = new Set([
  ...HOP_BY_HOP,
  "age",
  "x-cache",
  "x-request-id",
  "content-length",
]);

/** Marks a header the request lacks in a Vary key (an empty value is a different request). */
const ABSENT = "\u0000";

/**
 * Cache-Control directives, names lowercased; a directive without a value maps to "", a
 * quoted-string value to its text (RFC 9110 section 5.6.4: quotes and backslash escapes
 * gone, commas inside it part of the value, not directive separators).
 */
export function parseCacheControl(header: string | null): Map<string, string> {
  const directives = new Map<string, string>();
  if (!header) return directives;
  // Most values quote nothing: a plain split is enough for them.
  for (const part of header.includes('"') ? splitOutsideQuotes(header) : header.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name || directives.has(name)) continue; // the first occurrence wins
    let value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    directives.set(name, value);
  }
  return directives;
}

/** A list header's elements: split on the commas that are outside quoted strings. */
function splitOutsideQuotes(header: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const char = header[i];
    if (quoted && char === "\\") i++; // a quoted-pair: the next character is literal
    else if (char === '"') quoted = !quoted;
    else if (char === "," && !quoted) {
      parts.push(header.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(header.slice(start));
  return parts;
}

/** A delta-seconds value (RFC 9111 section 1.2.2), or undefined when it is not one. */
function deltaSeconds(value: string | undefined | null): number | undefined {
  return value != null && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** Sorted, lowercased, deduplicated header names of a Vary value ("*" kept as is). */
function varyNames(header: string | null): string[] {
  if (!header) return [];
  const names = new Set<string>();
  for (const name of header.split(",")) {
    const trimmed = name.trim().toLowerCase();
    if (trimmed) names.add(trimmed);
  }
  return [...names].sort();
}

/** Which way a request goes past the cache (see RequestPolicy). */
export function requestPolicy(request: CacheRequest): RequestPolicy {
  if (request.method !== "GET" && request.method !== "HEAD") return "bypass";
  const headers = request.headers;
  // RFC 9111 section 3.5 would allow storing an authorised response marked public or
  // s-maxage; we never do: such a marking is more often a mistake than intent, and handing
  // one user's authorised response to another is the worst thing a shared cache can do.
  if (headers.has("authorization")) return "bypass";
  // Ranges and upgrades are answered by the upstream (206 and 101 are never stored).
  if (headers.has("range") || headers.has("upgrade")) return "bypass";
  const cacheControl = headers.get("cache-control");
  // Pragma: no-cache counts only without Cache-Control (RFC 9111 section 5.4).
  if (cacheControl === null) return /\bno-cache\b/i.test(headers.get("pragma") ?? "") ? "refresh" : "use";
  const directives = parseCacheControl(cacheControl);
  if (directives.has("no-store")) return "bypass";
  if (directives.has("no-cache")) return "refresh";
  return "use";
}

/**
 * For how many more seconds a response may be served from a shared cache, or undefined when
 * it must not be stored: status 200-399 but not 206 or 304, `Cache-Control: public` with
 * s-maxage (which wins) or max-age above its current Age, and none of no-cache, no-store,
 * private, Set-Cookie, `Vary: *` or a Vary naming a header the proxy sets (SET_BY_THE_PROXY).
 */
export function freshnessLifetime({ status, headers }: CacheResponseHead): number | undefined {
  if (status < 200 || status > 399 || status === 206 || status === 304) return undefined;
  // First what most responses lack (checked per response, so the cheapest test goes first).
  const cacheControl = headers.get("cache-control");
  if (cacheControl === null) return undefined;
  const directives = parseCacheControl(cacheControl);
  if (!directives.has("public")) return undefined;
  if (headers.has("set-cookie")) return undefined;
  // A response varying on a header the proxy sets for the app was made for a value that the
  // client's request, and so the key, does not hold (X-Forwarded-For: the peer's address).
  const vary = varyNames(headers.get("vary"));
  if (vary.includes("*") || vary.some((name) => SET_BY_THE_PROXY.has(name))) return undefined;
  if (directives.has("no-cache") || directives.has("no-store") || directives.has("private")) return undefined;
  const maxAge = directives.has("s-maxage") ? deltaSeconds(directives.get("s-maxage")) : deltaSeconds(directives.get("max-age"));
  if (maxAge === undefined) return undefined;
  const remaining = maxAge - (deltaSeconds(headers.get("age")) ?? 0);
  return remaining > 0 ? remaining : undefined;
}

/** The URL's variants: the header names its responses vary on, and the keys stored for it. */
interface UrlVariants {
  names: string[];
  keys: Set<string>;
}

/**
 * The store. Keys are the request's absolute URL (scheme, host, path and query) plus, for a
 * response with Vary, the request's values of the headers it names. Only GET responses are
 * stored; a HEAD is answered from the GET entry. Least recently used entries are evicted
 * first; expired ones are dropped when met, and all of them before anything fresh is evicted.
 */
export class ResponseCache {
  readonly maxSize: number;
  readonly maxItemSize: number;
  readonly #now: () => number;
  /** In least-recently-used-first order: a hit moves its entry to the end. */
  readonly #entries = new Map<string, CacheEntry>();
  readonly #urls = new Map<string, UrlVariants>();
  #size = 0;
  #lastPruneAt = Number.NEGATIVE_INFINITY;

  constructor({ maxSize = 64 * 1024 * 1024, maxItemSize = 1024 * 1024, now = Date.now }: ResponseCacheOptions = {}) {
    if (!(maxSize >= 0) || !(maxItemSize >= 0)) {
      throw new RangeError(`Cannot create a response cache with negative limits: current values are ${maxSize} and ${maxItemSize}`);
    }
    this.maxSize = maxSize;
    this.maxItemSize = Math.min(maxItemSize, maxSize);
    this.#now = now;
  }

  /** Bytes held. */
  get size(): number {
    return this.#size;
  }

  /** Entries held. */
  get count(): number {
    return this.#entries.size;
  }

  /**
   * The fresh entry that answers `request` (GET or HEAD), if there is one; it becomes the
   * most recently used. `url` is the request's resourceUrl.
   */
  lookup(request: CacheRequest, url = resourceUrl(request)): CacheEntry | undefined {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    const variants = this.#urls.get(url);
    if (variants === undefined) return undefined;
    const key = entryKey(url, request, variants.names);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#now() >= entry.expiresAt) {
      this.#delete(entry);
      return undefined;
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  /**
   * Stores the complete response to a GET (`url` is its resourceUrl), when the request and
   * response allow it and it fits; returns whether it did. Replaces the entry for the same key, and drops the URL's
   * entries that varied on other headers (the newest response says how the URL varies).
   */
  store(request: CacheRequest, response: CacheResponseHead, body: Uint8Array<ArrayBuffer>, url = resourceUrl(request)): boolean {
    if (request.method !== "GET" || requestPolicy(request) === "bypass") return false;
    const lifetime = freshnessLifetime(response);
    if (lifetime === undefined) return false;
    const names = varyNames(response.headers.get("vary"));
    // A varied header the request's Connection names reached sluice's own steps but not the
    // app (compression reads Accept-Encoding): no one value says what the response was made for.
    if (names.length !== 0 && hopByHopOf(request, names) !== undefined) return false;
    const key = entryKey(url, request, names);
    const headers = new Headers();
    let size = ENTRY_OVERHEAD + key.length + body.byteLength;
    const notForwarded = varyNames(response.headers.get("connection"));
    for (const [name, value] of response.headers) {
      if (NOT_STORED.has(name) || notForwarded.includes(name)) continue;
      headers.append(name, value);
      size += name.length + value.length;
    }
    const contentLength = String(body.byteLength);
    headers.set("content-length", contentLength);
    size += "content-length".length + contentLength.length;
    if (body.byteLength > this.maxItemSize || size > this.maxSize) return false;

    const now = this.#now();
    const existing = this.#entries.get(key);
    if (existing !== undefined) this.#delete(existing);
    const previous = this.#urls.get(url);
    if (previous !== undefined && previous.names.join() !== names.join()) this.invalidate(url);
    this.#makeRoom(size, now);
    let variants = this.#urls.get(url);
    if (variants === undefined) {
      variants = { names, keys: new Set() };
      this.#urls.set(url, variants);
    }
    const entry: CacheEntry = {
      key,
      status: response.status,
      headers,
      body,
      etag: response.headers.get("etag"),
      lastModified: response.headers.get("last-modified"),
      storedAt: now,
      expiresAt: now + lifetime * 1000,
      initialAge: deltaSeconds(response.headers.get("age")) ?? 0,
      size,
    };
    this.#entries.set(key, entry);
    variants.keys.add(key);
    this.#size += size;
    return true;
  }

  /** Drops the entry that would answer `request` (`url` is its resourceUrl); returns whether there was one. */
  remove(request: CacheRequest, url = resourceUrl(request)): boolean {
    const variants = this.#urls.get(url);
    const entry = variants && this.#entries.get(entryKey(url, request, variants.names));
    if (entry === undefined) return false;
    this.#delete(entry);
    return true;
  }

  /** The entry's current Age in whole seconds (RFC 9111 section 4.2.3). */
  age(entry: CacheEntry): number {
    return entry.initialAge + Math.max(0, Math.floor((this.#now() - entry.storedAt) / 1000));
  }

  /**
   * Drops every entry for `url` (a resourceUrl; after an unsafe request changed it, RFC 9111
   * section 4.4); returns how many.
   */
  invalidate(url: string): number {
    const variants = this.#urls.get(url);
    if (variants === undefined) return 0;
    const keys = [...variants.keys];
    for (const key of keys) this.#delete(this.#entries.get(key)!);
    return keys.length;
  }

  /** Drops every expired entry; returns how many. */
  prune(): number {
    const now = this.#now();
    this.#lastPruneAt = now;
    let dropped = 0;
    for (const entry of this.#entries.values()) {
      if (now >= entry.expiresAt) {
        this.#delete(entry);
        dropped++;
      }
    }
    return dropped;
  }

  clear(): void {
    this.#entries.clear();
    this.#urls.clear();
    this.#size = 0;
  }

  /** Evicts until `size` more bytes fit: expired entries first (a full scan at most once a second), then the least recently used. */
  #makeRoom(size: number, now: number): void {
    if (this.#size + size <= this.maxSize) return;
    if (now - this.#lastPruneAt >= 1000) this.prune();
    for (const entry of this.#entries.values()) {
      if (this.#size + size <= this.maxSize) return;
      this.#delete(entry);
    }
  }

  #delete(entry: CacheEntry): void {
    if (!this.#entries.delete(entry.key)) return;
    this.#size -= entry.size;
    const url = entry.key.slice(0, entry.key.indexOf("\n"));
    const variants = this.#urls.get(url);
    variants?.keys.delete(entry.key);
    if (variants?.keys.size === 0) this.#urls.delete(url);
  }
}

/**
 * URL, then the Vary header names, then the request's values of them as the app gets them:
 * a header the request's Connection names is removed before forwarding, so it counts as
 * absent. Newlines never occur in either.
 */
function entryKey(url: string, request: CacheRequest, names: readonly string[]): string {
  let key = `${url}\n${names.join(",")}`;
  if (names.length === 0) return key;
  const hopByHop = hopByHopOf(request, names);
  for (const name of names) key += `\n${(hopByHop?.has(name) ? null : request.headers.get(name)?.trim()) ?? ABSENT}`;
  return key;
}

/** The `names` the request's Connection header lists, or undefined when it lists none of them. */
function hopByHopOf(request: CacheRequest, names: readonly string[]): Set<string> | undefined {
  const listed = connectionNamed(request.headers.get("connection"));
  return listed !== undefined && names.some((name) => listed.has(name)) ? listed : undefined;
}
