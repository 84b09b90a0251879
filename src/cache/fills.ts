/**
 * @module Fills: the URLs whose response a cache miss is fetching from the app right now.
 * Misses for the same URL meanwhile wait for that one response and are answered from the
 * cache (request collapsing, as nginx's proxy_cache_lock), instead of all going to the app at
 * once: after a deploy emptied the cache, or when a popular page expires. Only URLs whose
 * last answer was stored are collapsed: the misses of a page that is never stored (most
 * dynamic pages) must not queue behind each other. A fill is keyed by the variant it fetches
 * (the URL and, under the Vary of the URL's last stored answer, the request's values of the
 * headers it names: see ResponseCache.fillKey), so a miss never waits for an answer that
 * could not be its own (another Accept-Encoding's, for a compressed page). Pure bookkeeping:
 * the cache middleware bounds the wait.
 */

interface Fill {
  /** Told when the fill ends; made when the first miss joins. */
  waiters: (() => void)[] | undefined;
  ended: boolean;
}

/** Characters of URLs remembered as stored, at most (a URL may be kilobytes long). */
const MAX_STORED_URL_CHARS = 1024 * 1024;

export class Fills {
  /** By fill key (the URL itself for a URL whose answers do not vary). */
  readonly #underWay = new Map<string, Fill>();
  /**
   * URLs whose last answer was stored, with the header names that answer varied on; least
   * recently stored first; kept when the cache is emptied.
   */
  readonly #storedUrls = new Map<string, readonly string[]>();
  #storedUrlChars = 0;

  /** Fills under way. */
  get size(): number {
    return this.#underWay.size;
  }

  /** True while a miss fetches the variant `key` names (its fill key). */
  underWay(key: string): boolean {
    return this.#underWay.has(key);
  }

  /** True when `url`'s last answer was stored: its misses are worth collapsing. */
  worthCollapsing(url: string): boolean {
    return this.#storedUrls.has(url);
  }

  /**
   * The header names the last stored answer for `url` varied on (sorted, lowercased, as
   * varyNames gives them), or undefined when its last answer was not stored.
   */
  varyOf(url: string): readonly string[] | undefined {
    return this.#storedUrls.get(url);
  }

  /** `url`'s answer was stored; it varied on the header names `vary` (varyNames). */
  stored(url: string, vary: readonly string[] = []): void {
    this.#forget(url);
    this.#storedUrls.set(url, vary);
    this.#storedUrlChars += url.length;
    for (const oldest of this.#storedUrls.keys()) {
      if (this.#storedUrlChars <= MAX_STORED_URL_CHARS) break;
      this.#forget(oldest);
    }
  }

  #forget(url: string): void {
    if (this.#storedUrls.delete(url)) this.#storedUrlChars -= url.length;
  }

  /** Calls `ended` when the fill of `key` under way ends (at once when none is). */
  join(key: string, ended: () => void): void {
    const fill = this.#underWay.get(key);
    if (fill === undefined) ended();
    else (fill.waiters ??= []).push(ended);
  }

  /**
   * Starts a fill of the variant `key` of `url` (the URL itself when it does not vary): the
   * function returned ends it, telling those who joined. An answer that cannot be stored
   * (private now, an error, too large, cut) makes the URL no longer collapsed until one is
   * stored. Calling it again does nothing.
   */
  begin(key: string, url = key): (storable: boolean) => void {
    const fill: Fill = { waiters: undefined, ended: false };
    this.#underWay.set(key, fill);
    return (storable) => {
      if (fill.ended) return;
      fill.ended = true;
      if (this.#underWay.get(key) === fill) this.#underWay.delete(key);
      if (!storable) this.#forget(url);
      const waiters = fill.waiters;
      fill.waiters = undefined;
      if (waiters !== undefined) for (const ended of waiters) ended();
    };
  }

  /**
   * The cache was emptied (a rolling restart): the fills under way began before and their
   * answers will not be stored, so later misses start fills of their own rather than join
   * them. Those who joined already still hear their end.
   */
  detachUnderWay(): void {
    this.#underWay.clear();
  }
}
