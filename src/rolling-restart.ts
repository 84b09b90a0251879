/**
 * @module RollingRestarts: SIGUSR2, the deploy of new code without a refused or failed
 * request: a new child beside the old one, the switch once it is ready, then the old
 * child's drain and stop.
 */

import type { Config } from "./config.ts";
import type { ExitStatus } from "./runtime/types.ts";
import { log } from "./log.ts";
import type { Readiness } from "./readiness.ts";
import type { DrainResult, Server } from "./server.ts";
import type { Supervisor } from "./supervisor.ts";
import type { Metrics } from "./telemetry/metrics.ts";
import type { Http1Client } from "./upstream/http1-client.ts";

export interface RollingRestartDeps {
  supervisor: Supervisor;
  server: Server;
  upstream: Http1Client;
  readiness: Readiness;
  metrics: Metrics;
  /** The configuration in use (a reload may change the timings between two rolling restarts). */
  config: () => Config;
  /** Aborted by a fast stop: the old child's stop ladder is cut short too. */
  fastStop: AbortSignal;
  /** Says where the rolling restart is, and how the last one went, to systemd (STATUS=). */
  status: (text: string) => void;
  /** Empties the response cache at the switch (what the old code answered); returns how many entries it held. */
  clearResponseCache: () => number;
}

/**
 * Where the rolling restart under way is, as a stop that begins must report it; `drain` is
 * set once the old child's requests are over, or were cut at --drain-timeout (their answers
 * may still be under way), and `oldChildSignalled` once its stop signal is being sent.
 */
type Progress =
  | { phase: "starting"; pid: number | undefined }
  | { phase: "switched"; pid: number; newPid: number; port: number; drain?: DrainResult; oldChildSignalled: boolean };

/**
 * Runs rolling restarts one at a time: SIGUSR2s during one ask for one more after it (like
 * reloads, a burst coalesces). Once sluice's stop begins, none starts, and the one under way
 * logs nothing more (the stop logs what becomes of it at once: its children stop with the
 * rest, in the stop's order, and `shutdown complete` stays the last record).
 */
export class RollingRestarts {
  #deps: RollingRestartDeps;
  #running: Promise<void> | undefined;
  #again = false;
  #allowed = false;
  #stopped = new AbortController();
  #progress: Progress | undefined;

  constructor(deps: RollingRestartDeps) {
    this.#deps = deps;
  }

  /** sluice is ready: rolling restarts may run from now on (before, the child being started runs the new code anyway). */
  allow(): void {
    this.#allowed = true;
  }

  /** SIGUSR2. */
  request(): void {
    if (this.#stopped.signal.aborted) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#run();
        this.#progress = undefined;
      } while (this.#again && !this.#stopped.signal.aborted);
    })().finally(() => (this.#running = undefined));
  }

  /** The stop began: says what becomes of the rolling restart under way; none runs from now on. */
  stop(): void {
    this.#stopped.abort();
    const progress = this.#progress;
    if (progress?.phase === "starting") {
      log.lifecycle.warn("Rolling restart abandoned: the stop has begun; the new child stops with the rest", {
        event: "rolling-restart",
        result: "abandoned",
        pid: progress.pid,
      });
    } else if (progress?.phase === "switched") {
      // Its old child may have its stop signal already: its requests were over, or cut.
      const { pid, newPid, port, drain, oldChildSignalled } = progress;
      log.lifecycle.warn("Rolling restart interrupted by the stop: child {pid} stops with child {newPid}", {
        event: "rolling-restart",
        result: "interrupted",
        pid,
        newPid,
        port,
        oldChildSignalled,
        ...(drain && { drained: drain.drained, aborted: drain.aborted }),
      });
    }
  }

  /**
   * One rolling restart: a new child on a port of its own; once it is ready, new requests go
   * to it (and the response cache is emptied); those in flight on the old child finish (up
   * to --drain-timeout, then they are cut as at a stop's drain deadline); only then does the
   * old child get --stop-signal, and SIGKILL after --stop-timeout. A new child that is not
   * ready within --ready-timeout is stopped the same way, and the old one goes on serving.
   * A new child that exits after the switch, before the old one is stopped, fails it too.
   * Never throws.
   */
  async #run(): Promise<void> {
    const { supervisor, server, upstream, readiness, metrics, fastStop, status, clearResponseCache } = this.#deps;
    const stopped = this.#stopped.signal;
    const startedAt = performance.now();
    const skipped = (reason: string): void => {
      metrics.rollingRestarts.inc({ result: "skipped" });
      status(`last rolling restart skipped: ${reason}`);
      log.lifecycle.warn("Rolling restart skipped: {reason}", { event: "rolling-restart", result: "skipped", reason });
    };
    if (!this.#allowed) return skipped("sluice is not ready yet (the child it is starting runs the new code)");
    if (!readiness.isChildReady) return skipped("the child is restarting (the new one runs the new code)");
    const pid = supervisor.pid;
    this.#progress = { phase: "starting", pid };
    status(`rolling restart: starting a new child beside child ${pid}`);
    log.lifecycle.info("Rolling restart: starting a new child beside child {pid}", { event: "rolling-restart.begin", pid });
    const replacement = await supervisor.startReplacement();
    if (stopped.aborted || replacement.kind === "stopped") return;
    // Read now: a reload meanwhile may have changed them.
    const { drainTimeout, stopSignal, stopTimeout } = this.#deps.config();
    if (replacement.kind === "failed") {
      metrics.rollingRestarts.inc({ result: "failed" });
      const { child } = replacement;
      // (Not "child {pid} serves on": one reason is that it exited.)
      status(`last rolling restart failed: ${replacement.reason}`);
      log.lifecycle.error("Rolling restart failed; child {pid} goes on serving: {reason}", {
        event: "rolling-restart",
        result: "failed",
        pid,
        newPid: child?.process.pid ?? null,
        port: child?.target.port ?? null,
        reason: replacement.reason,
      });
      this.#progress = undefined; // nothing left for a stop to report: the failed child is one more it stops
      if (child) {
        // Its --ready-path probes' idle connection would keep an app that waits for it.
        upstream.closeIdle(child.target.hostname, child.target.port);
        await supervisor.retire(child, stopSignal, stopTimeout, fastStop);
      }
      return;
    }
    // New requests go to the new child from now on: wait for those the old one has in flight.
    const { previous, current } = replacement;
    // The new code may crash once it serves: then this rolling restart did not deploy it.
    let newChildExit: ExitStatus | undefined;
    void current.exited.then((exit) => (newChildExit = exit));
    const switched = { phase: "switched", pid: previous.process.pid, newPid: current.process.pid, port: current.target.port, oldChildSignalled: false } as const;
    this.#progress = switched;
    status(`rolling restart: child ${current.process.pid} on port ${current.target.port} serves; child ${previous.process.pid} finishes its requests`);
    // A page the old code answered must not stand in for the new code's (thruster's cache
    // goes with its process); nothing the old child still answers is stored.
    const cacheCleared = clearResponseCache();
    const old = previous.target;
    const drain = await server.drainWhere((exchange) => exchange.child === old, drainTimeout, stopped, (cut) => (this.#progress = { ...switched, drain: cut }));
    // Once stopping, the stop's own drain waits for them, and it stops the old child after.
    if (stopped.aborted) return;
    this.#progress = { ...switched, drain, oldChildSignalled: true };
    // An app that waits for its idle keep-alive connections to close would wait for these.
    upstream.closeIdle(old.hostname, old.port);
    const result = await supervisor.retire(previous, stopSignal, stopTimeout, fastStop);
    if (stopped.aborted) return;
    const counts = {
      pid: previous.process.pid,
      newPid: current.process.pid,
      port: current.target.port,
      ms: Math.round(performance.now() - startedAt),
      drained: drain.drained,
      aborted: drain.aborted,
      cacheCleared,
      killed: result.killed,
      exitCode: result.status?.code ?? null,
    };
    if (newChildExit) {
      // Its restart (--restart) runs the new code again; without one, sluice is stopping.
      metrics.rollingRestarts.inc({ result: "failed" });
      const reason = `The new child (pid ${current.process.pid}, PORT=${current.target.port}) exited with code ${newChildExit.code} after it took over; child ${previous.process.pid} was stopped all the same after its drain`;
      status(`last rolling restart failed: ${reason}`);
      log.lifecycle.error("Rolling restart failed: {reason}", { event: "rolling-restart", result: "failed", ...counts, reason });
      return;
    }
    metrics.rollingRestarts.inc({ result: "ok" });
    status(`last rolling restart ok: child ${current.process.pid} on port ${current.target.port} replaced child ${previous.process.pid}`);
    log.lifecycle.info("Rolling restart complete: child {newPid} on port {port} replaced child {pid}", { event: "rolling-restart", result: "ok", ...counts });
  }
}
