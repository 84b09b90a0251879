/** @module Waiting with deadlines: raceDeadline and sleep for one wait, Deadlines for many same-length ones. */

/**
 * Fires `onExpire` for each entry still present `timeoutMs` after it was added. Entries
 * expire in the order they were added (they share one timeout), so a single timer armed for
 * the oldest entry serves them all; adding and removing cost a Set operation. The timer only
 * exists while entries do, so an idle process has none.
 */
export class Deadlines<T> {
  #entries = new Map<T, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly timeoutMs: number, readonly onExpire: (entry: T) => void) {}

  add(entry: T): void {
    this.#entries.set(entry, performance.now() + this.timeoutMs);
    this.#timer ??= setTimeout(() => this.#sweep(), this.timeoutMs);
  }

  delete(entry: T): void {
    this.#entries.delete(entry);
    if (this.#entries.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #sweep(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const [entry, deadline] of this.#entries) {
      if (deadline > now) {
        this.#timer = setTimeout(() => this.#sweep(), deadline - now);
        return;
      }
      this.#entries.delete(entry);
      this.onExpire(entry);
    }
  }
}

/**
 * Resolves with `promise`'s value, or undefined at the deadline (none when `ms` is undefined)
 * or as soon as `cut` aborts (a fast stop cuts every wait short). The timer never outlives
 * the wait.
 */
export async function raceDeadline<T>(promise: Promise<T>, ms: number | undefined, cut?: AbortSignal): Promise<T | undefined> {
  if (cut?.aborted) return undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onCut: (() => void) | undefined;
  const stop = new Promise<undefined>((resolve) => {
    if (ms !== undefined) timer = setTimeout(() => resolve(undefined), ms);
    onCut = () => resolve(undefined);
    cut?.addEventListener("abort", onCut, { once: true });
  });
  try {
    return await Promise.race([promise, stop]);
  } finally {
    clearTimeout(timer);
    cut?.removeEventListener("abort", onCut!);
  }
}

/** Waits `ms`, or less when `cut` aborts. */
export async function sleep(ms: number, cut?: AbortSignal): Promise<void> {
  await raceDeadline(new Promise<never>(() => {}), ms, cut);
}
