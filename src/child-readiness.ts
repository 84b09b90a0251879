/**
 * @module ChildReadiness: how sluice learns that a child it started is ready (its port
 * accepts, or --ready-path answers 2xx) and, when it is not, what to tell the user.
 */

import type { ChildTarget } from "./child-target.ts";
import { formatDuration, hostPort } from "./config-values.ts";
import { raceDeadline } from "./deadlines.ts";
import { log } from "./log.ts";
import type { ExitStatus, Runtime } from "./runtime/types.ts";
import type { UpstreamFetch } from "./upstream/http1-client.ts";

export interface ReadinessCheckOptions {
  readyPath: string | undefined;
  readyTimeoutMs: number;
  /** Where --ready-timeout was set (a variable, the file's line), for messages; the flag when absent. */
  readyTimeoutSource?: string | undefined;
  /** Where --target-host was set, for messages; the flag when absent. */
  targetHostSource?: string | undefined;
  probeTcp: Runtime["probeTcp"];
  /** Requests to the child (the --ready-path probe). */
  upstream: UpstreamFetch;
}

/** A child being waited for. */
export interface ProbedChild {
  readonly process: { readonly pid: number; listeningAddresses?(): Promise<string[]> };
  readonly target: ChildTarget;
  readonly exited: Promise<ExitStatus>;
  /** What the last --ready-path probe saw, for the message when it is never ready. */
  lastAnswer: string | undefined;
}

const PROBE_INTERVAL_MS = 100;
/** Longest wait for one readiness check: a ready path that hangs is not ready. */
const PROBE_TIMEOUT_MS = 2000;
/** When a child not yet ready gets its one child.not-ready warning (when --ready-timeout runs at least as long again). */
const NOT_READY_NOTICE_MS = 10_000;

export class ChildReadiness {
  #options: ReadinessCheckOptions;

  constructor(options: ReadinessCheckOptions) {
    this.#options = options;
  }

  /** "within --ready-timeout 30s", for messages. */
  get within(): string {
    return `within ${this.limit}`;
  }

  /** "--ready-timeout 30s" (or where it was set), for messages. */
  get limit(): string {
    return `${this.#options.readyTimeoutSource ?? "--ready-timeout"} ${formatDuration(this.#options.readyTimeoutMs)}`;
  }

  /** Waits until `child` is ready, racing its exit, --ready-timeout and `stop` ("stopped"). */
  async wait(child: ProbedChild, stop: AbortSignal): Promise<"ready" | "timeout" | "stopped" | ExitStatus> {
    const startedAt = performance.now();
    const deadline = startedAt + this.#options.readyTimeoutMs;
    let exited: ExitStatus | undefined;
    let noticed = false;
    void child.exited.then((status) => (exited = status));
    while (!exited && !stop.aborted) {
      if (await this.#probe(child, deadline - performance.now())) {
        if (exited || stop.aborted) break;
        const ms = Math.round(performance.now() - startedAt);
        log.lifecycle.info("Child {pid} is ready after {ms}ms", { event: "child.ready", pid: child.process.pid, ms });
        return "ready";
      }
      if (performance.now() >= deadline) return "timeout";
      // Once, while a long --ready-timeout runs on: what the wait is for, and what it sees, so
      // that an app that will never be ready (it listens elsewhere) is not a silent minute.
      if (!noticed && performance.now() - startedAt >= NOT_READY_NOTICE_MS && deadline - performance.now() >= NOT_READY_NOTICE_MS) {
        noticed = true;
        const reason = await this.whyNotReady(child);
        if (!exited && !stop.aborted) {
          log.lifecycle.warn("Child {pid} is not ready after {seconds}s ({reason}); it has until {limit}", {
            event: "child.not-ready",
            pid: child.process.pid,
            seconds: Math.round((performance.now() - startedAt) / 1000),
            reason,
            limit: this.limit,
          });
        }
      }
      await raceDeadline(child.exited, PROBE_INTERVAL_MS, stop);
    }
    return exited ?? "stopped";
  }

  /** One readiness check, given up after PROBE_TIMEOUT_MS or `remainingMs`, so none outlasts --ready-timeout. */
  async #probe(child: ProbedChild, remainingMs: number): Promise<boolean> {
    const { hostname, port } = child.target;
    const { readyPath, probeTcp, upstream } = this.#options;
    const timeoutMs = Math.max(1, Math.min(PROBE_TIMEOUT_MS, remainingMs));
    if (readyPath === undefined) {
      return (await raceDeadline(probeTcp(hostname, port), timeoutMs)) ?? false;
    }
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const response = await upstream(`${child.target.origin}${readyPath}`, { signal });
      await response.body?.cancel();
      const location = response.headers.get("location");
      child.lastAnswer = `it last answered ${response.status}${location === null ? "" : ` redirecting to ${location}`}`;
      return response.status >= 200 && response.status < 300;
    } catch (error) {
      // A probe cut short by --ready-timeout's end saw less than the one before it.
      if (signal.aborted && timeoutMs < PROBE_TIMEOUT_MS && child.lastAnswer !== undefined) return false;
      const reason = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
      child.lastAnswer = signal.aborted ? `it did not answer within ${formatDuration(timeoutMs)}` : `its last try failed: ${reason}`;
      return false;
    }
  }

  /**
   * Why a child exited before it was ready. Exiting 0 there is what an app that daemonizes
   * does (it forks into the background and its first process exits): what it left running
   * is out of sluice's reach (a new session), and a port it answers on is not the child's.
   */
  async exitedBeforeReady(child: ProbedChild, status: ExitStatus, who = "The child"): Promise<string> {
    const exited = `${who} exited with code ${status.code} before it was ready`;
    // 137 reads as a code of the app's own; it was a signal, and SIGKILL most often the
    // kernel's out-of-memory killer (or a container's memory limit).
    if (status.signal) return `${exited}: it was killed by ${status.signal}${status.signal === "SIGKILL" ? " (as the kernel's out-of-memory killer does)" : ""}`;
    if (status.code !== 0) return exited;
    const { hostname, port } = child.target;
    const left = (await this.#options.probeTcp(hostname, port))
      ? `; ${hostPort(hostname, port)} now accepts connections, most likely from a daemon it left, which sluice cannot stop`
      : "";
    return `${exited}: if it daemonizes (forks into the background), run it in the foreground (as nginx's "daemon off;" does)${left}`;
  }

  /** What the readiness wait was for, and what it last saw: what a user needs to fix the app or the flags. */
  async whyNotReady(child: ProbedChild): Promise<string> {
    const { hostname, port } = child.target;
    const { readyPath, probeTcp } = this.#options;
    if (readyPath !== undefined) {
      const waitedFor = `waiting for GET ${readyPath} on ${hostPort(hostname, port)} to answer 2xx; ${child.lastAnswer ?? "it never answered"}`;
      const elsewhere = (await raceDeadline(probeTcp(hostname, port), PROBE_TIMEOUT_MS)) ? undefined : await this.#listensElsewhere(child);
      return elsewhere === undefined ? waitedFor : `${waitedFor}; ${elsewhere}`;
    }
    const waited = `waiting for ${hostPort(hostname, port)} to accept TCP connections`;
    // An app that binds "localhost" may get only the other loopback address (::1 first, as
    // some resolvers order it): name it, since "does the app listen on $PORT?" would mislead.
    const otherLoopback = OTHER_LOOPBACK[hostname];
    if (otherLoopback && (await raceDeadline(probeTcp(otherLoopback, port), PROBE_TIMEOUT_MS))) {
      return `${waited}; the app listens on ${hostPort(otherLoopback, port)} instead: pass --target-host ${otherLoopback}`;
    }
    return `${waited}; ${(await this.#listensElsewhere(child)) ?? "does the app listen on $PORT?"}`;
  }

  /**
   * Where the child's group listens instead of its target, from /proc: an app that ignores
   * PORT (a port in its own configuration or command) or binds another address.
   */
  async #listensElsewhere(child: ProbedChild): Promise<string | undefined> {
    const { hostname, port } = child.target;
    const addresses = (await raceDeadline(child.process.listeningAddresses?.() ?? Promise.resolve([]), PROBE_TIMEOUT_MS)) ?? [];
    if (addresses.length === 0) return undefined;
    // On every address, with the right port: the fault is the target host (a name that does
    // not resolve, an address of another machine), not the app.
    if (addresses.includes(`0.0.0.0:${port}`) || addresses.includes(`[::]:${port}`)) {
      return `the app listens on ${addresses.join(", ")}, every address of this machine, yet ${hostPort(hostname, port)} does not accept: ` +
        `does ${this.#options.targetHostSource ?? "--target-host"} name this machine (and resolve)?`;
    }
    const listed = `the app listens on ${addresses.join(", ")} instead`;
    return addresses.some((address) => address.endsWith(`:${port}`))
      ? `${listed}: make it listen on ${hostPort(hostname, port)}, or pass its address as --target-host`
      : `${listed}: make it listen on the port sluice passes it as PORT (${port})`;
  }
}

/** Each loopback address's counterpart in the other IP family. */
const OTHER_LOOPBACK: Record<string, string> = { "127.0.0.1": "::1", "::1": "127.0.0.1", localhost: "::1" };
