/** @module Deadlines: one timer for many same-length deadlines, instead of a timer per request. */

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
