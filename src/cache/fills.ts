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
}

/** URLs remembered as stored, at most: about 1 MiB of keys. */
const MAX_STORED_URLS = 10_000;

export class Fills {
  readonly #underWay = new Map<string, Fill>();
  /** URLs whose last answer was stored, least recently stored first; kept when the cache is emptied. */
  readonly #storedUrls = new Map<string, true>();

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
    this.#storedUrls.delete(url);
    this.#storedUrls.set(url, true);
    if (this.#storedUrls.size > MAX_STORED_URLS) this.#storedUrls.delete(this.#storedUrls.keys().next().value!);
  }

  /** Calls `ended` when the fill of `url` under way ends (at once when none is). */
  join(url: string, ended: () => void): void {
    const fill = this.#underWay.get(url);
    if (fill === undefined) ended();
    else (fill.waiters ??= []).push(ended);
  }

  /**
   * Starts a fill of `url`: the function returned ends it, telling those who joined. Its
   * answer not stored (private now, an error, too large, cut), the URL is no longer
   * collapsed until one is. Calling it again does nothing.
   */
  begin(url: string): (stored: boolean) => void {
    const fill: Fill = { waiters: undefined };
    this.#underWay.set(url, fill);
    return (stored) => {
      if (this.#underWay.get(url) !== fill) return;
      this.#underWay.delete(url);
      if (!stored) this.#storedUrls.delete(url);
      const waiters = fill.waiters;
      fill.waiters = undefined;
      if (waiters !== undefined) for (const ended of waiters) ended();
    };
  }
}
