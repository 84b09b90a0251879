/**
 * @module Supervisor: the child process: spawn, readiness, restart policy, the stop ladder,
 * and the rolling restart's replacement child.
 */

import { pipeLines } from "./child-output.ts";
import { ChildReadiness, type ProbedChild } from "./child-readiness.ts";
import { type ChildTarget, childTarget } from "./child-target.ts";
import { raceDeadline, sleep } from "./deadlines.ts";
import { hostPort } from "./config-values.ts";
import { ExitCode } from "./exit-codes.ts";
import { log } from "./log.ts";
import { spawnFailureReason } from "./spawn-failure.ts";
import type { LineOutput } from "./output.ts";
import type { Readiness } from "./readiness.ts";
import type { ChildProcess, ChildSignal, ExitStatus, Runtime } from "./runtime/types.ts";
import type { Metrics } from "./telemetry/metrics.ts";
import type { UpstreamFetch } from "./upstream/http1-client.ts";

export interface SupervisorOptions {
  command: readonly string[];
  env: Record<string, string>;
  targetHost: string;
  /** Where --target-host was set, for messages; the flag when absent. */
  targetHostSource?: string;
  targetPort: number;
  /** Where --target-port was set (a variable, the file's line), for messages; the flag when absent. */
  targetPortSource?: string;
  readyPath: string | undefined;
  readyTimeoutMs: number;
  /** Where --ready-timeout was set, for messages; the flag when absent. */
  readyTimeoutSource?: string | undefined;
  restart: "never" | "on-failure" | "always";
  restartMaxDelayMs: number;
}

/** What a reload may change for the children started, and the exits met, from then on. */
export type ChildSettings = Pick<SupervisorOptions, "readyPath" | "readyTimeoutMs" | "readyTimeoutSource" | "restart" | "restartMaxDelayMs">;

export interface SupervisorDeps {
  runtime: Runtime;
  /** Requests to the child (the --ready-path probe). */
  upstream: UpstreamFetch;
  readiness: Readiness;
  metrics: Metrics;
  stdout: LineOutput;
  stderr: LineOutput;
}

export interface StopResult {
  /** Children that had to be SIGKILLed. */
  killed: number;
  status: ExitStatus | undefined;
}

type ChildState = "starting" | "ready" | "backoff" | "stopping" | "exited";

/** A child process sluice started, and what it knows of it. */
export interface RunningChild extends ProbedChild {
  readonly process: ChildProcess;
  /** Where it listens (its PORT). */
  readonly target: ChildTarget;
  /** Settles when it has exited (logged then). */
  readonly exited: Promise<ExitStatus>;
  /** Its stop, once one began: a second stop of the same child (the rolling restart's and sluice's) joins the first. */
  stopped: Promise<StopResult> | undefined;
}

/** What became of a rolling restart's new child. */
export type Replacement =
  /** Ready, and now the child requests go to; `previous` still runs, for the requests it has in flight. */
  | { kind: "ready"; previous: RunningChild; current: RunningChild }
  /** Not ready; `child`, when it was started, is still to be stopped (see retire). */
  | { kind: "failed"; reason: string; child?: RunningChild }
  /** sluice's stop began first: the stop stops it with the others. */
  | { kind: "stopped" };

/** The child never became ready; `status` is set when it exited first. */
export class ChildStartError extends Error {
  override name = "ChildStartError";
  constructor(message: string, readonly status?: ExitStatus, options?: ErrorOptions) {
    super(message, options);
  }

  /**
   * sluice's exit code: the child's own when it failed, else 78. A child that exited 0
   * before it was ready did not succeed at anything (it most likely daemonized), and 0
   * would tell systemd or Docker that sluice stopped on request, so they would not restart it.
   */
  get exitCode(): number {
    return this.status && this.status.code !== 0 ? this.status.code : ExitCode.STARTUP_FAILED;
  }
}

/** The runtime could not spawn the child (`cause`); Supervisor#spawnFailed turns it into a ChildStartError. */
class SpawnFailed extends Error {
  override name = "SpawnFailed";
  constructor(override readonly cause: unknown) {
    super("the child could not be spawned", { cause });
  }
}

const FIRST_RESTART_DELAY_MS = 250;
/** A child that stayed ready this long starts the backoff over at its next crash. */
const STABLE_RUN_MS = 10_000;
/** How often the stop looks whether the child's process group is gone once its leader exited. */
const GROUP_POLL_MS = 50;
/** After SIGKILL the kernel needs a moment; more than this means something is very wrong. */
const KILL_WAIT_MS = 2_000;
/** Longest wait at a stop for the copies of the child's output to reach the pipes' end (a daemon may hold them open). */
const OUTPUT_WAIT_MS = 1000;
/** The same in a fast stop, which exits within a second: once the group is SIGKILLed the pipes end at once. */
const FAST_OUTPUT_WAIT_MS = 250;

/**
 * How the child ended for good: it exited and the restart policy did not bring it back, or
 * its restart failed (`code`: sluice's exit code for it, as at the start: ChildStartError).
 */
export type ChildEnd = { kind: "exited"; status: ExitStatus } | { kind: "restart-failed"; code: number };

/**
 * Runs one child. `start()` resolves once it is ready the first time; `exited` resolves
 * when it has exited on its own and the restart policy does not bring it back.
 */
export class Supervisor {
  readonly exited: Promise<ChildEnd>;
  #resolveExited!: (end: ChildEnd) => void;
  /** The child requests go to (once spawned). */
  #current: RunningChild | undefined;
  /** Where the child requests go to listens, or will: the next one started after a crash listens there too. */
  #target: ChildTarget;
  /** The other children still running: a rolling restart's new one while it starts, old ones while they drain and stop. */
  #others = new Set<RunningChild>();
  /**
   * A rolling restart's new child from its spawn until it takes over or has been stopped: a
   * restart of the current child waits for its stop, since an app that ignores PORT listens
   * on the port the restarted child needs (and would pass for another process there).
   */
  #replacement: { child: RunningChild; settled: Promise<void>; settle: () => void } | undefined;
  /** Copies of every child's output still running, also those of children that were restarted. */
  #outputs = new Set<Promise<void>>();
  /** Aborted once the stop has seen the child's group gone: the copies stop waiting for room in sluice's output. */
  #outputsFinishing = new AbortController();
  #stopping = new AbortController();
  /** Aborted when sluice's stop begins: from then on a child that exits is not restarted. */
  #noRestarts = new AbortController();
  /** Restarts since the child last ran stably; sets the backoff. */
  #attempt = 0;
  readonly #options: SupervisorOptions;
  #deps: SupervisorDeps;
  /** How the next child started is waited for (a reload may change it: see reconfigure). */
  #readiness: ChildReadiness;
  /** What the child's next exit meets (a reload may change it: see reconfigure). */
  #restartPolicy: Pick<ChildSettings, "restart" | "restartMaxDelayMs">;

  constructor(options: SupervisorOptions, deps: SupervisorDeps) {
    this.#options = options;
    this.#deps = deps;
    this.exited = new Promise((resolve) => (this.#resolveExited = resolve));
    this.#target = childTarget(options.targetHost, options.targetPort);
    this.#readiness = this.#readinessFor(options);
    this.#restartPolicy = { restart: options.restart, restartMaxDelayMs: options.restartMaxDelayMs };
  }

  /**
   * A reload's settings. --ready-path and --ready-timeout apply to the children started from
   * now on (a rolling restart's, one restarted after a crash); a child being waited for keeps
   * what it was started with. --restart and --restart-max-delay apply from the child's next
   * exit on; a restart already waiting out its backoff goes ahead.
   */
  reconfigure({ readyPath, readyTimeoutMs, readyTimeoutSource, restart, restartMaxDelayMs }: ChildSettings): void {
    this.#readiness = this.#readinessFor({ readyPath, readyTimeoutMs, readyTimeoutSource });
    this.#restartPolicy = { restart, restartMaxDelayMs };
  }

  #readinessFor({ readyPath, readyTimeoutMs, readyTimeoutSource }: Pick<SupervisorOptions, "readyPath" | "readyTimeoutMs" | "readyTimeoutSource">): ChildReadiness {
    return new ChildReadiness({
      readyPath,
      readyTimeoutMs,
      readyTimeoutSource,
      ...(this.#options.targetHostSource === undefined ? {} : { targetHostSource: this.#options.targetHostSource }),
      probeTcp: this.#deps.runtime.probeTcp,
      upstream: this.#deps.upstream,
    });
  }

  get pid(): number | undefined {
    return this.#current?.process.pid;
  }

  /** Where requests go: the child's host and port (--target-port until a rolling restart picked another). */
  get target(): ChildTarget {
    return this.#target;
  }

  /** Spawns the child and waits until it is ready; throws ChildStartError when it cannot be. */
  async start(): Promise<void> {
    const target = this.#target;
    /** The child before this one, when it exited before it was ready (and is restarted). */
    let exitedBefore: ExitStatus | undefined;
    for (;;) {
      // Readiness is "the port accepts": a port some other process already listens on would
      // look ready at once, and every request would go to that process instead of the child.
      // Checked before each spawn: a child that exited before it was ready may have left a
      // daemon there (in a session of its own, out of reach of the group's SIGKILL).
      if (await this.#deps.runtime.probeTcp(target.hostname, target.port)) {
        // Named where it was set: SLUICE_TARGET_PORT or the file's line, not a flag the user never passed.
        const source = this.#options.targetPortSource ?? "--target-port";
        const option = target.port === this.#options.targetPort ? source : "the port a rolling restart chose";
        const left = exitedBefore === undefined
          ? ""
          : `; the child that exited with code ${exitedBefore.code} before it was ready most likely left it (a daemon sluice cannot stop)`;
        throw new ChildStartError(
          `Cannot start the child: ${hostPort(target.hostname, target.port)} (${option}) already accepts connections, ` +
            `so requests would go to another process${left}; stop it or choose another ${source}`,
        );
      }
      // A stop that came during the port check (or a restart's backoff) already ran: a
      // child spawned now would outlive sluice in its own process group.
      if (this.#stopping.signal.aborted) return;
      this.#setState("starting");
      const readiness = this.#readiness;
      let child: RunningChild;
      try {
        child = this.#spawn(target);
      } catch (error) {
        throw await this.#spawnFailed(error);
      }
      this.#current = child;
      const outcome = await readiness.wait(child, this.#stopping.signal);
      if (outcome === "ready") {
        this.#setState("ready");
        void this.#watch(child);
        return;
      }
      if (outcome === "stopped") return;
      if (outcome === "timeout") {
        throw new ChildStartError(`The child did not become ready ${readiness.within} (${await readiness.whyNotReady(child)})`);
      }
      if (!this.#shouldRestart(outcome)) throw new ChildStartError(await readiness.exitedBeforeReady(child, outcome), outcome);
      await this.#killLeftovers(child.process);
      exitedBefore = outcome;
      if (!(await this.#backoff())) return;
    }
  }

  /**
   * Called when sluice's stop begins (before its shutdown delay and drain): a child that
   * exits from now on stays down, and `exited` reports it, so the stop need not wait for a
   * restarted child that could only serve a listener about to close.
   */
  beginStop(): void {
    this.#noRestarts.abort();
  }

  /**
   * Sends `signal` to the process group of every child (the one requests go to, and any
   * other a rolling restart left running), waits up to `timeoutMs` (or until `cut` aborts)
   * for them to exit, then SIGKILLs what is left. `status` is the current child's. Never throws.
   */
  async stop(signal: ChildSignal, timeoutMs: number, cut: AbortSignal): Promise<StopResult> {
    this.#noRestarts.abort();
    this.#stopping.abort();
    const current = this.#current;
    if (!current) return { killed: 0, status: undefined };
    this.#setState("stopping");
    // In parallel: each has the whole --stop-timeout.
    const [own, ...others] = await Promise.all([current, ...this.#others].map((child) => this.#stopChild(child, signal, timeoutMs, cut)));
    // The groups are gone: the copies pass on what is left in the pipes without waiting for a
    // slow stdout (they would otherwise write it after the shutdown record, or never). What
    // bounds the wait is a process outside the group holding a pipe open (a daemon).
    this.#outputsFinishing.abort();
    await raceDeadline(Promise.all(this.#outputs), cut.aborted ? FAST_OUTPUT_WAIT_MS : OUTPUT_WAIT_MS);
    return { killed: others.reduce((sum, result) => sum + result.killed, own!.killed), status: own!.status };
  }

  /**
   * Starts a new child on a port of its own (the rolling restart) while the current one goes
   * on serving, and waits until it is ready. Once it is, requests go to it (`target`); the
   * previous child runs on until its requests in flight are over and it is retired. Never throws.
   */
  async startReplacement(): Promise<Replacement> {
    const previous = this.#current;
    if (previous === undefined || !this.#deps.readiness.isChildReady) return { kind: "failed", reason: "the child is not ready" };
    const { hostname } = this.#target;
    const readiness = this.#readiness;
    let child: RunningChild;
    try {
      // Not --target-port: the current child listens there until it stops.
      const target = childTarget(hostname, this.#deps.runtime.freePort(hostname));
      if (this.#noRestarts.signal.aborted) return { kind: "stopped" };
      child = this.#spawn(target);
    } catch (error) {
      const failed = await this.#spawnFailed(error);
      return { kind: "failed", reason: failed instanceof Error ? failed.message : String(failed) };
    }
    this.#others.add(child);
    const { promise: settled, resolve: settle } = Promise.withResolvers<void>();
    this.#replacement = { child, settled, settle };
    // The child it is to replace exiting ends the wait: it cannot be replaced any more, and
    // its restart (--restart) must not find the new child on its port (an app that ignores PORT).
    const previousExited = new AbortController();
    void previous.exited.then(() => previousExited.abort());
    const outcome = await readiness.wait(child, AbortSignal.any([this.#stopping.signal, previousExited.signal]));
    // A stop began: the new child is one more to stop (it is among #others), and requests stay where they go.
    if (this.#stopping.signal.aborted || this.#noRestarts.signal.aborted) return { kind: "stopped" };
    const replaced = `The child it was to replace (pid ${previous.process.pid}) exited meanwhile`;
    if (outcome === "stopped") return { kind: "failed", reason: replaced, child };
    const who = `The new child (pid ${child.process.pid}, PORT=${child.target.port})`;
    if (outcome === "timeout") {
      return { kind: "failed", reason: `${who} was not ready ${readiness.within} (${await readiness.whyNotReady(child)})`, child };
    }
    if (outcome !== "ready") return { kind: "failed", reason: await readiness.exitedBeforeReady(child, outcome, who), child };
    if (previous !== this.#current || !this.#deps.readiness.isChildReady) {
      // Its restart (--restart) brings the app up anew, or sluice stops because it exited.
      return { kind: "failed", reason: replaced, child };
    }
    this.#others.delete(child);
    this.#settleReplacement(child);
    this.#others.add(previous);
    this.#current = child;
    this.#target = child.target;
    void this.#watch(child);
    return { kind: "ready", previous, current: child };
  }

  /** Stops a child other than the current one (the rolling restart's old or failed one), as stop() does. Never throws. */
  async retire(child: RunningChild, signal: ChildSignal, timeoutMs: number, cut: AbortSignal): Promise<StopResult> {
    const result = await this.#stopChild(child, signal, timeoutMs, cut);
    this.#others.delete(child);
    return result;
  }

  /** The stop ladder for one child: `signal` to its group, then SIGKILL after `timeoutMs`. Run once per child. */
  #stopChild(child: RunningChild, signal: ChildSignal, timeoutMs: number, cut: AbortSignal): Promise<StopResult> {
    child.stopped ??= (async () => {
      const { process } = child;
      const deadline = performance.now() + timeoutMs;
      process.killGroup(signal);
      let status = await raceDeadline(child.exited, timeoutMs, cut);
      // The rest of the group got the signal too and has the rest of --stop-timeout to finish:
      // an app under a wrapper script without exec, a master's workers still shutting down.
      if (status !== undefined) await this.#untilGroupGone(process, deadline, cut);
      let killed = 0;
      if (status === undefined || (await process.groupAlive())) {
        const what = status === undefined ? "Child" : "Child exited but its process group is";
        log.lifecycle.warn(`${what} still running after {timeoutMs}ms; sending SIGKILL to its process group`, {
          event: "child.kill",
          pid: process.pid,
          timeoutMs: cut.aborted ? 0 : timeoutMs,
        });
        process.killGroup("SIGKILL");
        killed = 1;
        status ??= await raceDeadline(child.exited, KILL_WAIT_MS);
      }
      this.#settleReplacement(child);
      return { killed, status };
    })();
    return child.stopped;
  }

  /**
   * Waits until the new child of a rolling restart that failed because the child exited (see
   * startReplacement) is stopped: an app that ignores PORT may listen on the port the
   * restarted child needs. False when a stop began meanwhile.
   */
  async #replacementStopped(): Promise<boolean> {
    await this.#replacement?.settled;
    return !this.#noRestarts.signal.aborted;
  }

  /** `child`, if it is the rolling restart's new one, has taken over or been stopped. */
  #settleReplacement(child: RunningChild): void {
    if (this.#replacement?.child !== child) return;
    this.#replacement.settle();
    this.#replacement = undefined;
  }

  /** Waits until no process of the child's group remains, the deadline passes or `cut` aborts. */
  async #untilGroupGone(child: ChildProcess, deadline: number, cut: AbortSignal): Promise<void> {
    while ((await child.groupAlive()) && !cut.aborted && performance.now() < deadline) {
      await sleep(Math.min(GROUP_POLL_MS, deadline - performance.now()), cut);
    }
  }

  /**
   * Starts a child listening on `target` (its PORT). Synchronous, so that whoever started it
   * records it before a stop can look for it; a failure to spawn is explained by #spawnFailed.
   */
  #spawn(target: ChildTarget): RunningChild {
    const { runtime, stdout, stderr } = this.#deps;
    const { command, env } = this.#options;
    let child: ChildProcess;
    try {
      child = runtime.spawn(command, { env: { ...env, PORT: String(target.port) } });
    } catch (error) {
      throw new SpawnFailed(error);
    }
    const exited = child.exited.then((status) => {
      log.lifecycle.info("Child {pid} exited with code {code}", { event: "child.exited", pid: child.pid, ...status });
      return status;
    });
    for (const output of [pipeLines(child.stdout, stdout, this.#outputsFinishing.signal), pipeLines(child.stderr, stderr, this.#outputsFinishing.signal)]) {
      this.#outputs.add(output);
      void output.finally(() => this.#outputs.delete(output));
    }
    log.lifecycle.info("Child started with pid {pid}", {
      event: "child.started",
      pid: child.pid,
      command: this.#options.command,
      port: target.port,
    });
    return { process: child, target, exited, lastAnswer: undefined, stopped: undefined };
  }

  /** What a failed spawn throws: a ChildStartError that says why, when it is a SpawnFailed; `error` itself otherwise. */
  async #spawnFailed(error: unknown): Promise<unknown> {
    if (!(error instanceof SpawnFailed)) return error;
    const { command, env } = this.#options;
    const { cause } = error;
    // In the same words on both runtimes; "no such file" for a program that exists says which
    // interpreter (#! line, ELF loader) is missing.
    const reason = await spawnFailureReason(command[0]!, cause, env.PATH, this.#deps.runtime);
    return new ChildStartError(
      `Cannot start the child "${command.join(" ")}": ${reason}`,
      undefined,
      { cause },
    );
  }

  /** Follows a ready child until it exits, then restarts it or reports the exit (unless a rolling restart replaced it). */
  async #watch(child: RunningChild): Promise<void> {
    const readyAt = performance.now();
    const status = await child.exited;
    if (this.#stopping.signal.aborted || child !== this.#current) return;
    this.#deps.readiness.setChild("not-ready");
    if (!this.#shouldRestart(status)) {
      this.#setState("exited");
      this.#resolveExited({ kind: "exited", status });
      return;
    }
    if (performance.now() - readyAt >= STABLE_RUN_MS) this.#attempt = 0;
    // What the old child left behind could hold its port or pile up across restarts.
    await this.#killLeftovers(child.process);
    try {
      if ((await this.#backoff()) && (await this.#replacementStopped())) await this.start();
      else if (!this.#stopping.signal.aborted) this.#resolveExited({ kind: "exited", status }); // the stop began during the backoff
    } catch (error) {
      log.lifecycle.error("Restarting the child failed: {error}", { event: "child.restart-failed", error: String(error) });
      this.#setState("exited");
      this.#resolveExited({ kind: "restart-failed", code: error instanceof ChildStartError ? error.exitCode : ExitCode.STARTUP_FAILED });
    }
  }

  /** SIGKILLs what an exited child left in its process group (background jobs), if anything. */
  async #killLeftovers(child: ChildProcess): Promise<void> {
    if (!(await child.groupAlive()) || !child.killGroup("SIGKILL")) return;
    log.lifecycle.warn("Child exited but left processes in its group; killed them", {
      event: "child.leftovers-killed",
      pgid: child.pid,
    });
  }

  #shouldRestart(status: ExitStatus): boolean {
    if (this.#noRestarts.signal.aborted) return false;
    const { restart } = this.#restartPolicy;
    return restart === "always" || (restart === "on-failure" && status.code !== 0);
  }

  /** Waits out the backoff before the next restart; false when a stop came first. */
  async #backoff(): Promise<boolean> {
    const delayMs = Math.min(FIRST_RESTART_DELAY_MS * 2 ** this.#attempt, this.#restartPolicy.restartMaxDelayMs);
    this.#attempt++;
    this.#setState("backoff");
    this.#deps.metrics.childRestarts.inc();
    log.lifecycle.warn("Restarting the child in {delayMs}ms", { event: "child.restarting", delayMs, attempt: this.#attempt });
    // stop() aborts #noRestarts too: this one signal covers both.
    await sleep(delayMs, this.#noRestarts.signal);
    return !this.#noRestarts.signal.aborted;
  }

  #setState(state: ChildState): void {
    const gauge = this.#deps.metrics.childState;
    for (const s of ["starting", "ready", "backoff", "stopping", "exited"] as const) gauge.set(s === state ? 1 : 0, { state: s });
    if (state === "ready") this.#deps.readiness.setChild("ready");
    // A spawn changes nothing: /readyz says "starting" until the first child is ready, and
    // "not-ready" (set when the child exited) while a restarted one starts.
    else if (state !== "starting") this.#deps.readiness.setChild("not-ready");
  }
}
