/**
 * @module OrphanReaping: when sluice is PID 1 (a container without an init), it collects the
 * orphans the kernel hands it, so that none stays a zombie. Runs on SIGCHLD; the runtime's
 * own children are left to the runtime (Runtime.reapOrphans), so the supervisor still gets
 * the app's exit status. Elsewhere (PID != 1) orphans go to the real init and this does nothing.
 */

import { log } from "./log.ts";
import type { Runtime } from "./runtime/types.ts";
import type { Counter } from "./telemetry/metrics.ts";

/** How soon to look again when an exited child of the runtime's own hides orphans behind it. */
const RETRY_MS = 50;

export class OrphanReaping {
  #runtime: Runtime;
  #reaped: Counter;
  #removeListener: (() => void) | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;

  constructor(runtime: Runtime, reaped: Counter) {
    this.#runtime = runtime;
    this.#reaped = reaped;
  }

  /** Starts reaping if this process is PID 1. */
  start(): void {
    if (this.#runtime.pid !== 1 || this.#removeListener) return;
    this.#removeListener = this.#runtime.onSignal("SIGCHLD", () => this.#sweep());
    log.lifecycle.debug("Running as PID 1: orphaned processes will be reaped", { event: "init.reaping" });
    this.#sweep(); // orphans that exited before the listener was in place
  }

  stop(): void {
    this.#removeListener?.();
    this.#removeListener = undefined;
    clearTimeout(this.#retry);
    this.#retry = undefined;
  }

  #sweep(): void {
    const { reaped, blocked } = this.#runtime.reapOrphans();
    if (reaped > 0) this.#reaped.inc({}, reaped);
    if (blocked && this.#retry === undefined && this.#removeListener) {
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        this.#sweep();
      }, RETRY_MS);
    }
  }
}
