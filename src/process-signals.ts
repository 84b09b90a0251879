/** @module ProcessSignals: turns process signals into a stop request, a fast-stop cut, reloads and rolling restarts. */

import { log } from "./log.ts";
import type { ListenSignal, Runtime } from "./runtime/types.ts";

export interface StopRequest {
  signal: ListenSignal;
}

/**
 * SIGTERM/SIGINT ask for a graceful stop; a second one, or SIGQUIT at any time, aborts
 * `fastStop`, which cuts every remaining wait short. SIGHUP asks for a reload, SIGUSR2 for a
 * rolling restart of the child. SIGUSR1, SIGALRM and the other signals sluice has no use for
 * are logged and ignored: their default action would end sluice at once, without a drain and
 * with its child left running (Go programs such as thruster ignore them too). Installed before
 * the service exists (main.ts): a stop or a reload that comes meanwhile is kept (a rolling
 * restart is not: the child that starts then is started from the new code).
 */
export class ProcessSignals {
  readonly stopRequested: Promise<StopRequest>;
  #resolve!: (request: StopRequest) => void;
  #requested = false;
  #fast = new AbortController();
  #runtime: Runtime;
  #installed = false;
  #onReload: (() => void) | undefined;
  /** A SIGHUP came before anyone could reload: it is run once `onReload` is given. */
  #reloadPending = false;
  #onRollingRestart: (() => void) | undefined;
  /** Set once the stop has written its last record: signals are then taken and ignored, unlogged. */
  #quiet = false;

  constructor(runtime: Runtime) {
    this.#runtime = runtime;
    this.stopRequested = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** Reloads on SIGHUP from now on, and at once for one that came before. */
  onReload(listener: () => void): void {
    this.#onReload = listener;
    if (this.#reloadPending && !this.#requested) listener();
    this.#reloadPending = false;
  }

  /** Runs a rolling restart on SIGUSR2 from now on. */
  onRollingRestart(listener: () => void): void {
    this.#onRollingRestart = listener;
  }

  get fastStop(): AbortSignal {
    return this.#fast.signal;
  }

  /** Installs the handlers (once); returns this. */
  install(): this {
    if (this.#installed) return this;
    this.#installed = true;
    const on = (signal: ListenSignal, listener: () => void): void => {
      this.#runtime.onSignal(signal, () => {
        if (this.#quiet) return;
        log.lifecycle.info("Received {signal}", { event: "signal", signal });
        listener();
      });
    };
    on("SIGTERM", () => this.#stop("SIGTERM", false));
    on("SIGINT", () => this.#stop("SIGINT", false));
    on("SIGQUIT", () => this.#stop("SIGQUIT", true));
    on("SIGHUP", () => {
      if (this.#requested) return;
      if (this.#onReload) this.#onReload();
      else this.#reloadPending = true;
    });
    for (const signal of this.#runtime.ignorableSignals) {
      on(signal, () => log.lifecycle.warn("{signal} ignored: sluice has no use for it", { event: "signal.ignored", signal }));
    }
    on("SIGUSR2", () => {
      if (this.#requested) return;
      if (this.#onRollingRestart) this.#onRollingRestart();
      else log.lifecycle.warn("SIGUSR2 ignored: sluice is still starting", { event: "rolling-restart", result: "skipped" });
    });
    return this;
  }

  /**
   * From now on every signal is ignored without a record: the stop has written its last one
   * (`shutdown complete`), and one that comes while the logs flush must not follow it. The
   * handlers stay, so that no default action ends sluice with another code meanwhile.
   */
  quiet(): void {
    this.#quiet = true;
  }

  #stop(signal: ListenSignal, fast: boolean): void {
    if ((this.#requested || fast) && !this.#fast.signal.aborted) {
      log.lifecycle.warn("Fast stop: skipping the remaining waits", { event: "stop.fast", signal });
      this.#fast.abort(signal);
    }
    if (!this.#requested) {
      this.#requested = true;
      this.#resolve({ signal });
    }
  }
}
