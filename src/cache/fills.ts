/**
 * @module Fills: the URLs whose response a cache miss is fetching from the app right now.
 * Misses for the same URL meanwhile wait for that one response and are answered from the
 * cache (request collapsing, as nginx's proxy_cache_lock), instead of all going to the app at
 * once: after a deploy emptied the cache, or when a popular page expires. Only URLs whose
 * last answer was stored are collapsed: the misses of a page that is never stored (most
 * dynamic pages) must not queue behind each other. Pure bookkeeping: the cache middleware
 * bounds the wait.
 */

interface Fill {
  /** Told when the fill ends; made when the first miss joins. */
  waiters: (() => void)[] | undefined;
  ended: boolean;
}

/** Characters of URLs remembered as stored, at most (a URL may be kilobytes long). */
const MAX_STORED_URL_CHARS = 1024 * 1024;

export class Fills {
  readonly #underWay = new Map<string, Fill>();
  /** URLs whose last answer was stored, least recently stored first; kept when the cache is emptied. */
  readonly #storedUrls = new Map<string, true>();
  #storedUrlChars = 0;

  /** Fills under way. */
  get size(): number {
    return this.#underWay.size;
  }

  /** True while a miss fetches `url`. */
  underWay(url: string): boolean {
    return this.#underWay.has(url);
  }

  /** True when `url`'s last answer was stored: its misses are worth collapsing. */
  worthCollapsing(url: string): boolean {
    return this.#storedUrls.has(url);
  }

  /** `url`'s answer was stored. */
  stored(url: string): void {
    this.#forget(url);
    this.#storedUrls.set(url, true);
    this.#storedUrlChars += url.length;
    for (const oldest of this.#storedUrls.keys()) {
      if (this.#storedUrlChars <= MAX_STORED_URL_CHARS) break;
      this.#forget(oldest);
    }
  }

  #forget(url: string): void {
    if (this.#storedUrls.delete(url)) this.#storedUrlChars -= url.length;
  }

  /** Calls `ended` when the fill of `url` under way ends (at once when none is). */
  join(url: string, ended: () => void): void {
    const fill = this.#underWay.get(url);
    if (fill === undefined) ended();
    else (fill.waiters ??= []).push(ended);
  }

  /**
   * Starts a fill of `url`: the function returned ends it, telling those who joined. An
   * answer that cannot be stored (private now, an error, too large, cut) makes the URL no
   * longer collapsed until one is stored. Calling it again does nothing.
   */
  begin(url: string): (storable: boolean) => void {
    const fill: Fill = { waiters: undefined, ended: false };
    this.#underWay.set(url, fill);
    return (storable) => {
      if (fill.ended) return;
      fill.ended = true;
      if (this.#underWay.get(url) === fill) this.#underWay.delete(url);
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
