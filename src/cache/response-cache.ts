/**
 * @module ResponseCache: an in-memory store of public HTTP responses for a shared cache
 * (RFC 9111), with Vary, size accounting, LRU eviction and expiry on an injectable clock.
 * Pure: no I/O, no runtime APIs. What may be stored, and for how long: cache-rules.ts;
 * middleware/cache.ts decides when to look up and store.
 */

import { connectionNamed, HOP_BY_HOP } from "../forwarded-headers.ts";
import { Fills } from "./fills.ts";
import { ageSeconds, type CacheRequest, type CacheResponseHead, freshnessLifetime, requestPolicy, resourceUrl, varyNames } from "./cache-rules.ts";

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
 * Bytes counted per entry on top of its body, headers and key: the memory around them (the
 * entry, its Headers, its records in the maps and sets here). Measured with 100,000 entries
 * of an empty body and four header fields: 1.9 KB each on Bun 1.4.5, 2.5 KB on Deno 2.9.6,
 * of which the bytes counted otherwise were 143; counted as 256, a 64 MiB cache of small
 * answers held 162,000 entries and 360 MiB.
 */
export const ENTRY_OVERHEAD = 2048;

/** Bytes counted per stored header field on top of its name and value (measured as above: 80-110). */
export const FIELD_OVERHEAD = 96;

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
  #generation = 0;
  /** The misses fetching a URL's response now, which other misses for it wait for (see Fills). */
  readonly fills = new Fills();

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

  /** Counts clear()s: an answer that began before the last one is not to be stored (see the cache middleware). */
  get generation(): number {
    return this.#generation;
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
   * The key of the fill (see Fills) a miss for `request` (`url` its resourceUrl) starts or
   * joins: the URL, and under the Vary of the URL's last stored answer, the request's values
   * of the headers it names, as its entry's key. Only misses the same answer can serve wait
   * for each other: a compressed page's answer for one Accept-Encoding never serves another.
   */
  fillKey(request: CacheRequest, url = resourceUrl(request)): string {
    const names = this.fills.varyOf(url);
    return names === undefined || names.length === 0 ? url : entryKey(url, request, names);
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
      size += FIELD_OVERHEAD + name.length + value.length;
    }
    const contentLength = String(body.byteLength);
    headers.set("content-length", contentLength);
    size += FIELD_OVERHEAD + "content-length".length + contentLength.length;
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
      initialAge: ageSeconds(response.headers) ?? 0,
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

  /** Drops every entry (a rolling restart's new code answers from now on); returns how many. */
  clear(): number {
    const dropped = this.#entries.size;
    this.#generation++;
    this.#entries.clear();
    this.#urls.clear();
    this.#size = 0;
    this.fills.detachUnderWay();
    return dropped;
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
