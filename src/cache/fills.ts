/**
 * @module Fills: the URLs whose response a cache miss is fetching from the app right now.
 * Misses for the same URL meanwhile wait for that one response and are answered from the
 * cache (request collapsing, as nginx's proxy_cache_lock), instead of all going to the app at
 * once: after a deploy emptied the cache, or when a popular page expires. Pure bookkeeping:
 * the cache middleware bounds the wait.
 */

interface Fill {
  /** Told when the fill ends; made when the first miss joins. */
  waiters: (() => void)[] | undefined;
}

export class Fills {
  readonly #underWay = new Map<string, Fill>();

  /** Fills under way. */
  get size(): number {
    return this.#underWay.size;
  }

  /** True while a miss fetches `url`. */
  underWay(url: string): boolean {
    return this.#underWay.has(url);
  }

  /** Calls `ended` when the fill of `url` under way ends (at once when none is). */
  join(url: string, ended: () => void): void {
    const fill = this.#underWay.get(url);
    if (fill === undefined) ended();
    else (fill.waiters ??= []).push(ended);
  }

  /**
   * Starts a fill of `url`: the function returned ends it (stored, found not storable,
   * failed), telling those who joined. Calling it again does nothing.
   */
  begin(url: string): () => void {
    const fill: Fill = { waiters: undefined };
    this.#underWay.set(url, fill);
    return () => {
      if (this.#underWay.get(url) === fill) this.#underWay.delete(url);
      const waiters = fill.waiters;
      fill.waiters = undefined;
      if (waiters !== undefined) for (const ended of waiters) ended();
    };
  }
}
