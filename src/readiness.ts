/** @module Readiness: whether sluice can serve now, and the gate that holds requests until it can. */

export type ReadinessState = "starting" | "ready" | "not-ready" | "stopping";

export interface HoldLimits {
  /** Longest a request waits for readiness. */
  timeoutMs: number;
  /** Requests allowed to wait at once; more are refused at once. */
  maxHeld: number;
}

/**
 * The one source of truth for `/readyz`: ready when the child is ready and sluice is not
 * stopping. Requests that arrive while the child is starting or restarting wait here
 * (bounded in time and count) instead of failing with 502. During the stop's shutdown
 * delay `/readyz` says 503 but requests are still served: the gate follows the child only,
 * held requests included, until the stop refuses holds (refuseHolds: no child is coming).
 */
/** What became of a child that refused a connection while it counted as ready (waitForComeback). */
export type Comeback = "back" | "stayed" | "gone";

export class Readiness {
  #child: "starting" | "ready" | "not-ready" = "starting";
  #stopping = false;
  /** Set when no child is coming any more (or sluice never was ready, at a stop): holds are refused. */
  #holdsRefused = false;
  #waiters = new Set<() => void>();
  /** Woken when the child stops counting as ready. */
  #lossWaiters = new Set<() => void>();
  #listeners: ((state: ReadinessState) => void)[] = [];

  get state(): ReadinessState {
    return this.#stopping ? "stopping" : this.#child;
  }

  /** What `/readyz` reports. */
  get isReady(): boolean {
    return this.state === "ready";
  }

  get isChildReady(): boolean {
    return this.#child === "ready";
  }

  /** Requests waiting now. */
  get held(): number {
    return this.#waiters.size;
  }

  onChange(listener: (state: ReadinessState) => void): void {
    this.#listeners.push(listener);
  }

  setChild(state: "ready" | "not-ready"): void {
    if (this.#child === state) return;
    this.#child = state;
    this.#changed();
  }

  /** Final: sluice never becomes ready again once stopping. Held requests go on waiting for the child. */
  setStopping(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#changed();
  }

  /** Final: requests waiting for the child get false now, and new ones at once. */
  refuseHolds(): void {
    if (this.#holdsRefused) return;
    this.#holdsRefused = true;
    for (const wake of this.#waiters) wake();
  }

  #changed(): void {
    for (const listener of this.#listeners) listener(this.state);
    if (this.#child !== "ready") {
      for (const wake of this.#lossWaiters) wake();
    }
    if (this.#child === "ready") {
      for (const wake of this.#waiters) wake();
    }
  }

  /**
   * Resolves true once the child is ready, false when the wait is refused (too many
   * waiting, timed out, holds refused) or `signal` aborts.
   */
  waitUntilReady({ timeoutMs, maxHeld }: HoldLimits, signal: AbortSignal): Promise<boolean> {
    if (this.#child === "ready") return Promise.resolve(true);
    if (this.#holdsRefused || this.#waiters.size >= maxHeld || signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve(this.#child === "ready");
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done, { once: true });
      this.#waiters.add(done);
    });
  }

  /**
   * For a request whose connection the child refused while it counted as ready: it has most
   * likely just exited, before sluice noticed. Waits up to `noticeMs` for the child to count
   * as not ready, then, as a held request, for it to be ready again (restarted): "back" when
   * it is (a refused connection carried nothing of the request, so it can be sent again),
   * "stayed" when it never counted as gone, "gone" when it did not come back within the
   * hold limits (or holds were refused, or `signal` aborted).
   */
  async waitForComeback(noticeMs: number, limits: HoldLimits, signal: AbortSignal): Promise<Comeback> {
    // Also once stopping: a child that dies during the shutdown delay or the drain is not
    // restarted, and the request then gets 503 as a held one does (the holds are refused).
    if (this.#child === "ready") {
      const lost = await new Promise<boolean>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          this.#lossWaiters.delete(done);
          resolve(this.#child !== "ready");
        };
        const timer = setTimeout(done, noticeMs);
        signal.addEventListener("abort", done, { once: true });
        this.#lossWaiters.add(done);
      });
      if (!lost) return "stayed";
    }
    return (await this.waitUntilReady(limits, signal)) ? "back" : "gone";
  }
}
