/** @module Service: owns the lifecycle order: start, reload, stop (DESIGN.md's numbered steps). */

import { buildAdminApp } from "./admin.ts";
import { buildApp, type Pipeline } from "./app.ts";
import { ResponseCache } from "./cache/response-cache.ts";
import { changedOptions, childEnvironment, type Config, CONNECTION_TIMEOUT_OPTIONS, type OptionKey, OPTIONS, optionSource, RESPONSE_CACHE_OPTIONS, RESTART_OPTIONS, stopBudget } from "./config.ts";
import { hostPort } from "./config-values.ts";
import { changedFiles } from "./files/prepare-files.ts";
import { raceDeadline, sleep } from "./deadlines.ts";
import { ExitCode } from "./exit-codes.ts";
import { compareLogLevel } from "@logtape/logtape";
import { readErrorCode } from "./read-errors.ts";
import { log, setupLogging } from "./log.ts";
import type { LineOutput } from "./output.ts";
import { OrphanReaping } from "./orphan-reaping.ts";
import { Readiness } from "./readiness.ts";
import type { HttpListener, Runtime, ServeOptions } from "./runtime/types.ts";
import { ProcessSignals } from "./process-signals.ts";
import { RollingRestarts } from "./rolling-restart.ts";
import { StopSteps } from "./stop-steps.ts";
import { SystemdNotifier } from "./systemd-notify.ts";
import { Server } from "./server.ts";
import { ChildStartError, Supervisor } from "./supervisor.ts";
import { Metrics } from "./telemetry/metrics.ts";
import type { SpanCounts } from "./telemetry/otlp-exporter.ts";
import { TracerPool } from "./telemetry/tracer-pool.ts";
import type { TracerProvider } from "./telemetry/tracer-provider.ts";
import { exporterKey } from "./telemetry/tracing-config.ts";
import { Http1Client, type UpstreamInit } from "./upstream/http1-client.ts";

export interface ServiceDeps {
  runtime: Runtime;
  env: Record<string, string | undefined>;
  stdout: LineOutput;
  stderr: LineOutput;
  /** Reads and validates the configuration again (flags, environment, file); throws when invalid. */
  loadConfig: () => Promise<Config>;
  /** Signal handling installed before the service existed (as PID 1, see main.ts). */
  signals?: ProcessSignals;
}

/** The tracing modules, loaded (with OpenTelemetry) once a configuration turns tracing on. */
type TracingModule = typeof import("./telemetry/tracing.ts");

function loadTracing(): Promise<TracingModule> {
  return import("./telemetry/tracing.ts");
}

/** Why the service stops: a signal, the child's own exit, or a failed start. */
type StopTrigger =
  | { kind: "signal"; signal: string }
  | { kind: "child-exit"; code: number }
  | { kind: "restart-failed"; code: number }
  | { kind: "start-failed"; code: number };

export class Service {
  #config: Config;
  #deps: ServiceDeps;
  #metrics = new Metrics();
  #readiness = new Readiness();
  #server: Server;
  #supervisor: Supervisor;
  #admin: HttpListener | undefined;
  #notifier: SystemdNotifier;
  #orphans: OrphanReaping;
  #tracers = new TracerPool<TracerProvider>();
  #spanCounts: SpanCounts = { exported: 0, dropped: 0 };
  #signals: ProcessSignals;
  /** The reload under way, if any; SIGHUPs meanwhile ask for one more after it. */
  #reloading: Promise<void> | undefined;
  #reloadAgain = false;
  #responseCache: ResponseCache | undefined;
  /** The configuration #responseCache was made for. */
  #responseCacheConfig: Config | undefined;
  /** Every HTTP request to the child goes through it (pipelines across reloads, the ready probe). */
  #upstream: Http1Client;
  #rollingRestarts: RollingRestarts;
  /** Set when the stop begins: a reload still under way then is abandoned. */
  #stopBegun = false;
  /**
   * True while a reload reads its configuration (and loads what it needs): a stop that begins
   * then logs the reload as abandoned itself, at once, and the reload ends silently. Logged
   * when the read came back, the record could follow `shutdown complete`, or be lost at exit.
   */
  #reloadReading = false;
  /** Set once the child was ready and sluice said so (the "ready" record, READY=1). */
  #wasReady = false;
  /** Set once a configuration with tracing on was loaded. */
  #tracing: TracingModule | undefined;

  /** A service for `config`, with the tracing modules loaded when it traces. */
  static async create(config: Config, deps: ServiceDeps): Promise<Service> {
    return new Service(config, deps, config.tracing.enabled ? await loadTracing() : undefined);
  }

  private constructor(config: Config, deps: ServiceDeps, tracing: TracingModule | undefined) {
    this.#config = config;
    this.#deps = deps;
    this.#tracing = tracing;
    const { runtime } = deps;
    this.#upstream = new Http1Client({ connect: runtime.connectTcp });
    this.#notifier = new SystemdNotifier(runtime, deps.env);
    this.#orphans = new OrphanReaping(runtime, this.#metrics.orphansReaped);
    this.#readiness.onChange((state) => this.#metrics.ready.set(state === "ready" ? 1 : 0));
    for (const [stream, output] of [["stdout", deps.stdout], ["stderr", deps.stderr]] as const) {
      if (stream === "stderr" && output === deps.stdout) continue; // one output for both (2>&1): its drops are stdout's
      output.onDropped = (lines) => {
        this.#metrics.outputDropped.inc({ stream }, lines);
        log.lifecycle.warn("Dropped {lines} lines: {stream} was not read fast enough", { event: "output.dropped", stream, lines });
      };
    }
    this.#metrics.sampleTracing(() => ({
      providersBuilt: this.#tracers.built,
      providersActive: this.#tracers.active,
      spansExported: this.#spanCounts.exported,
      spansDropped: this.#spanCounts.dropped,
    }));
    this.#metrics.sampleCache(() => ({ bytes: this.#responseCache?.size ?? 0, entries: this.#responseCache?.count ?? 0 }));
    this.#server = new Server(runtime, this.#buildPipeline(config));
    this.#supervisor = new Supervisor(
      {
        command: config.command,
        env: childEnvironment(deps.env, config.targetPort),
        targetHost: config.targetHost,
        targetHostSource: optionSource(config, "targetHost"),
        targetPort: config.targetPort,
        targetPortSource: optionSource(config, "targetPort"),
        readyPath: config.readyPath,
        readyTimeoutMs: config.readyTimeout,
        readyTimeoutSource: optionSource(config, "readyTimeout"),
        restart: config.restart,
        restartMaxDelayMs: config.restartMaxDelay,
      },
      { runtime, upstream: (url, init) => this.#upstream.fetch(url, init), readiness: this.#readiness, metrics: this.#metrics, stdout: deps.stdout, stderr: deps.stderr },
    );
    this.#signals = deps.signals ?? new ProcessSignals(runtime);
    this.#rollingRestarts = new RollingRestarts({
      supervisor: this.#supervisor,
      server: this.#server,
      upstream: this.#upstream,
      readiness: this.#readiness,
      metrics: this.#metrics,
      config: () => this.#config,
      fastStop: this.#signals.fastStop,
      status: (text) => this.#notifier.detail(text),
      clearResponseCache: () => this.#responseCache?.clear() ?? 0,
    });
  }

  /**
   * A pipeline for `config`. With tracing on it leases the tracer provider for its exporter
   * settings: built only when no pipeline holds one with the same key, released with the
   * pipeline after its last request (so a reload that keeps the settings builds nothing).
   */
  #buildPipeline(config: Config): Pipeline {
    const { runtime } = this.#deps;
    const responseCache = this.#responseCacheFor(config);
    const deps = {
      readiness: this.#readiness,
      metrics: this.#metrics,
      upstreamFetch: (url: string, init?: UpstreamInit) => this.#upstream.fetch(url, init),
      childTarget: () => this.#supervisor.target,
      upstreamConnect: runtime.connectTcp,
      compressors: runtime,
      files: runtime,
      http: runtime,
      responseCache,
    };
    let pipeline: Pipeline;
    if (config.tracing.enabled) {
      const { tracing } = config;
      const module = this.#tracing!;
      const lease = this.#tracers.acquire(exporterKey(tracing), () => module.buildTracerProvider(tracing, this.#spanCounts));
      pipeline = buildApp(config, {
        ...deps,
        tracing: module.pipelineTracing(lease.provider, tracing.sampler),
        release: () => void this.#tracers.release(lease),
      });
    } else {
      pipeline = buildApp(config, deps);
    }
    // Only a pipeline that was built replaces the cache: a failed reload keeps what is cached.
    this.#useResponseCache(responseCache, config);
    return pipeline;
  }

  /**
   * The response cache for `config`: the one in use while none of RESPONSE_CACHE_OPTIONS
   * changed, so a reload keeps what is cached; a new one otherwise; none when --cache-size is 0.
   */
  #responseCacheFor(config: Config): ResponseCache | undefined {
    if (config.cacheSize === 0) return undefined;
    const current = this.#responseCache;
    if (current !== undefined && !changesBetween(this.#responseCacheConfig!, config).some((key) => RESPONSE_CACHE_OPTIONS.has(key))) return current;
    return new ResponseCache({ maxSize: config.cacheSize, maxItemSize: config.maxCacheItemSize });
  }

  /**
   * Makes `cache` the one in use. A cache replaced is emptied: the old pipeline holds it
   * until its last exchange ends, which for a WebSocket or an event stream opened before
   * the reload can be hours, and no new request reads it (what the exchanges in flight
   * still store in it is at most one item each).
   */
  #useResponseCache(cache: ResponseCache | undefined, config: Config): void {
    if (cache !== this.#responseCache) this.#responseCache?.clear();
    this.#responseCache = cache;
    this.#responseCacheConfig = config;
  }

  /** When the flush that ends a stop must be over (performance.now() time), once it began. */
  #flushDeadline: number | undefined;

  /**
   * After the stop's flush: spans it did not deliver (a receiver slow or hanging past
   * --flush-timeout, or a fast stop) are lost with the process. Not counted in
   * sluice_spans_dropped_total (an export still running may yet count them, and nothing
   * scrapes it any more), so this record is the only place that says how many.
   */
  #reportUnexportedSpans(fast: boolean): void {
    const spans = this.#tracers.providers().reduce((sum, provider) => sum + provider.unexported, 0);
    if (spans === 0) return;
    const message = fast
      ? "{spans} spans were not exported: the fast stop cut their flush; they are lost"
      : "{spans} spans were not exported within --flush-timeout; they are lost";
    log.lifecycle.warn(message, { event: "tracing.flush.incomplete", spans, fast });
  }

  /** What is left of --flush-timeout (all of it before the flush began), in ms. */
  #flushRemainingMs(): number {
    if (this.#flushDeadline === undefined) return this.#config.flushTimeout;
    return Math.max(0, this.#flushDeadline - performance.now());
  }

  /** What run()'s caller has left for flushing the logs after it returned. */
  get logFlushMs(): number {
    return this.#flushRemainingMs();
  }

  /** Runs until stopped; returns the exit code. Never throws. */
  async run(): Promise<number> {
    const trigger = await this.#start();
    return this.#stop(trigger);
  }

  /** Step 1: listeners, then the child, then ready. Returns what ended the serving. */
  async #start(): Promise<StopTrigger> {
    const config = this.#config;
    this.#signals.install();
    this.#signals.onReload(() => this.#requestReload());
    this.#signals.onRollingRestart(() => this.#rollingRestarts.request());
    this.#orphans.start(); // as PID 1 only
    try {
      await this.#bindListeners();
    } catch (error) {
      log.lifecycle.fatal("{error}", { event: "start.failed", error: error instanceof Error ? error.message : String(error) });
      return { kind: "start-failed", code: ExitCode.STARTUP_FAILED };
    }
    const stopRequested = this.#signals.stopRequested.then(({ signal }): StopTrigger => ({ kind: "signal", signal }));
    try {
      const started = await Promise.race([this.#supervisor.start().then(() => undefined), stopRequested]);
      if (started) return started;
    } catch (error) {
      const code = error instanceof ChildStartError ? error.exitCode : ExitCode.STARTUP_FAILED;
      log.lifecycle.fatal("{error}", { event: "start.failed", error: error instanceof Error ? error.message : String(error), code });
      return { kind: "start-failed", code };
    }
    log.lifecycle.info("sluice is ready on {address}", {
      event: "ready",
      address: hostPort(config.httpHost, this.#server.port),
      host: config.httpHost,
      port: this.#server.port,
      childPid: this.#supervisor.pid,
    });
    this.#wasReady = true;
    this.#rollingRestarts.allow();
    this.#notifier.ready(`serving on ${hostPort(config.httpHost, this.#server.port)}`);
    return Promise.race([
      stopRequested,
      this.#supervisor.exited.then((end): StopTrigger => end.kind === "exited" ? { kind: "child-exit", code: end.status.code } : end),
    ]);
  }

  async #bindListeners(): Promise<void> {
    const { runtime } = this.#deps;
    const { adminListen, httpHost, httpPort } = this.#config;
    if (adminListen) {
      const adminApp = buildAdminApp({
        readiness: this.#readiness,
        metrics: this.#metrics,
        sample: () => {
          this.#metrics.requestsInFlight.set(this.#server.inFlight);
          this.#metrics.heldRequests.set(this.#readiness.held);
        },
      });
      this.#admin = await listen(optionSource(this.#config, "adminListen"), adminListen.hostname, adminListen.port, (onListenerFailed) =>
        runtime.serve({ ...adminListen, handler: (request) => adminApp.fetch(request), onListenerFailed }));
    }
    // Both options make the address, so a failure to bind it names both (the host may be at fault),
    // a default last: "the default of --http-host and --http-port" read as both left at their defaults.
    const DEFAULT = "the default of ";
    const [host, port] = [optionSource(this.#config, "httpHost"), optionSource(this.#config, "httpPort")];
    const httpOptions = host.startsWith(DEFAULT) && port.startsWith(DEFAULT)
      ? `the defaults of --http-host and --http-port`
      : host.startsWith(DEFAULT) ? `${port} and ${host}` : `${host} and ${port}`;
    await listen(httpOptions, httpHost, httpPort, (onListenerFailed) => this.#server.start(httpHost, httpPort, this.#config, onListenerFailed));
    log.lifecycle.info("Listening on {address}", {
      event: "listening",
      address: hostPort(httpHost, this.#server.port),
      host: httpHost,
      port: this.#server.port,
      adminPort: this.#admin?.port ?? null,
    });
  }

  /** A burst of SIGHUPs coalesces: at most one reload runs, and at most one more follows it. */
  #requestReload(): void {
    // Once a stop has begun, by a signal or by the child's own exit, there is nothing to apply.
    if (this.#stopBegun) return;
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = (async () => {
      this.#notifier.reloading();
      do {
        this.#reloadAgain = false;
        await this.#reload();
      } while (this.#reloadAgain && !this.#stopBegun);
      this.#notifier.reloaded();
    })().finally(() => (this.#reloading = undefined));
  }

  /**
   * Step 2: read and validate the new configuration; on error keep serving on the old one.
   * Otherwise build the new pipeline, swap it in for new requests (requests in flight
   * finish on the old one, released after them) and apply what can change live. Never throws.
   */
  async #reload(): Promise<void> {
    const startedAt = performance.now();
    const current = this.#config;
    let next: Config;
    this.#reloadReading = true;
    try {
      next = await this.#deps.loadConfig();
    } catch (error) {
      this.#reloadReading = false;
      if (!this.#stopBegun) this.#reloadFailed(error);
      return;
    }
    if (this.#stopBegun) return; // the stop logged it abandoned (and reads #reloadReading no more)
    const changedKeys = changesBetween(current, next);
    const changed: string[] = changedKeys.map((key) => OPTIONS[key].name);
    if (JSON.stringify(current.tracing) !== JSON.stringify(next.tracing)) changed.push("tracing");
    // A runtime without connection timeouts (Deno) applies --idle-timeout and
    // --header-timeout after no restart either: saying they wait for one would be a promise
    // the restart breaks (it reports them unapplied, as config.unapplied).
    const neverApplied = this.#deps.runtime.httpLimits.connectionTimeouts ? new Set<OptionKey>() : CONNECTION_TIMEOUT_OPTIONS;
    const unappliedKeys = changedKeys.filter((key) => neverApplied.has(key));
    const pendingKeys = changedKeys.filter((key) => RESTART_OPTIONS.has(key) && !neverApplied.has(key));
    // The listeners and the child keep what they were started with.
    const applied: Config = { ...next, command: current.command };
    for (const key of [...pendingKeys, ...unappliedKeys]) (applied as Record<OptionKey, unknown>)[key] = current[key];
    let pipeline: Pipeline;
    try {
      if (applied.tracing.enabled) this.#tracing ??= await loadTracing();
      if (this.#stopBegun) return; // the stop logged it abandoned
      pipeline = this.#buildPipeline(applied);
    } catch (error) {
      if (!this.#stopBegun) this.#reloadFailed(error);
      return;
    } finally {
      this.#reloadReading = false;
    }
    this.#server.swapPipeline(pipeline);
    this.#config = applied;
    this.#supervisor.reconfigure({
      readyPath: applied.readyPath,
      readyTimeoutMs: applied.readyTimeout,
      readyTimeoutSource: optionSource(applied, "readyTimeout"),
      restart: applied.restart,
      restartMaxDelayMs: applied.restartMaxDelay,
    });
    this.#metrics.reloads.inc({ result: "ok" });
    const pendingRestart = pendingKeys.map((key) => OPTIONS[key].name);
    const unapplied = unappliedKeys.map((key) => OPTIONS[key].name);
    const report = (): void => {
      const record = {
        event: "reload",
        result: "ok",
        changed: changed.filter((name) => !pendingRestart.includes(name) && !unapplied.includes(name)),
        pendingRestart,
        ...(unapplied.length > 0 ? { unapplied } : {}),
        ms: Math.round(performance.now() - startedAt),
      };
      // What the file asks for and does not apply yet is a warning: at --log-level warning
      // the operator would otherwise never learn that a new port waits for a restart.
      if (unapplied.length > 0) {
        const waiting = pendingRestart.length > 0 ? "; waiting for a restart: {pendingRestart}" : "";
        log.lifecycle.warn(`Reloaded the configuration; not applied by this runtime's HTTP server, which has no idle or header timeout: {unapplied}${waiting}`, record);
      } else if (pendingRestart.length === 0) log.lifecycle.info("Reloaded the configuration", record);
      else log.lifecycle.warn("Reloaded the configuration; waiting for a restart: {pendingRestart}", record);
    };
    if (applied.logLevel === current.logLevel && applied.logFormat === current.logFormat) return report();
    // The record goes out under whichever of the two levels shows more.
    const moreVerbose = compareLogLevel(applied.logLevel, current.logLevel) < 0;
    if (!moreVerbose) report();
    await setupLogging(this.#deps.stdout, { level: applied.logLevel, format: applied.logFormat });
    if (moreVerbose) report();
  }

  /**
   * The stop began while the configuration was being read (a slow file): what the stop
   * already uses stays, and nothing is built that the stop would not release.
   */
  #reloadAbandoned(): void {
    log.lifecycle.warn("Reload abandoned: the stop has begun", { event: "reload", result: "abandoned" });
  }

  #reloadFailed(error: unknown): void {
    this.#metrics.reloads.inc({ result: "error" });
    log.lifecycle.error("Reload failed; still serving with the previous configuration: {error}", {
      event: "reload",
      result: "error",
      error: error instanceof Error ? error.message : String(error),
    });
  }

  /**
   * Step 3, in this order: not ready -> shutdown delay -> close the listener -> drain ->
   * stop the child -> flush -> exit. Each step is timed, logged, and may fail without
   * stopping the ones after it.
   */
  async #stop(trigger: StopTrigger): Promise<number> {
    const config = this.#config;
    const cut = this.#signals.fastStop; // a second signal, or SIGQUIT, cuts every wait short
    // Each phase's gauge is set as the phase ends: /metrics is scraped during the stop, not after it.
    const steps = new StopSteps((phase, ms) => this.#metrics.shutdownPhase.set(ms / 1000, { phase }));
    const step = steps.run.bind(steps);

    log.lifecycle.info("Stopping ({reason})", { event: "stop.begin", reason: describe(trigger), inFlight: this.#server.inFlight });
    // 1. /readyz turns 503; systemd hears STOPPING=1, with the rest of the budget. A child
    // that exits from now on is not restarted. Every response from now on asks its client
    // to close the connection, also when the delay is skipped: after the drain's answers
    // (held requests' 503s included) the connection closes, and a keep-alive client told
    // nothing would send its next request on it and get no answer at all.
    this.#stopBegun = true;
    if (this.#reloadReading) this.#reloadAbandoned();
    this.#rollingRestarts.stop();
    this.#server.closeConnectionsAfterResponse();
    this.#readiness.setStopping();
    // Held requests go on waiting for a child that is coming (one being restarted when the
    // stop began: the delay serves normally, and the drain waits for what is in flight), not
    // for one that never will: sluice was never ready (no balancer sends to it), or the child
    // is gone for good (its exit ended the serving, or it exits now and is not restarted).
    if (trigger.kind !== "signal" || !this.#wasReady) this.#readiness.refuseHolds();
    void this.#supervisor.exited.then(() => this.#readiness.refuseHolds());
    this.#supervisor.beginStop();
    this.#notifier.stopping(stopBudget(config).totalMs);
    // 2. Keep serving while load balancers notice; responses ask clients to reconnect. Not
    // when sluice never was ready: no health-checked balancer sends to it, and every request
    // would get 503 until the listener closes.
    if (trigger.kind === "signal" && this.#wasReady) {
      await step("shutdown-delay", async () => {
        // With no child left to answer, serving on would only turn requests into 502s;
        // a refused connection lets a load balancer retry elsewhere.
        const childGone = new AbortController();
        void this.#supervisor.exited.then(() => childGone.abort());
        await sleep(config.shutdownDelay, AbortSignal.any([cut, childGone.signal]));
      });
    }
    // 3. New connections are refused by the kernel from here on (on Deno, from the event
    // loop's next turn, which the step waits for: a fast stop signals the child right after).
    await step("close-listener", () => this.#server.closeListener());
    // 4. Requests in flight finish, up to the drain deadline; the rest are aborted.
    const drain = await step("drain", () => this.#server.drain(config.drainTimeout, cut));
    // 5. Only now does the child hear about the stop. Nothing will use the idle connections
    // to it again, and an app that waits for its clients to close them would wait for these.
    this.#upstream.close();
    const stopped = await step("stop-child", () => this.#supervisor.stop(config.stopSignal, config.stopTimeout, cut));
    // 6. The rest shares one --flush-timeout, so the stop budget holds: spans of every
    // request served (drained ones included), the admin listener, then (in cli.ts) the log
    // lines still queued, which keep the last quarter of it, up to 250 ms.
    this.#flushDeadline = performance.now() + config.flushTimeout;
    const logReserveMs = Math.min(250, config.flushTimeout / 4);
    await step("flush-traces", async () => {
      this.#server.retirePipeline();
      await raceDeadline(this.#tracers.settled(), Math.max(0, this.#flushRemainingMs() - logReserveMs), cut);
      this.#reportUnexportedSpans(cut.aborted);
    });
    await step("close-admin", () => {
      const admin = this.#admin;
      if (admin === undefined) return;
      const closed = admin.close();
      // Its answers are made synchronously, so nothing worth waiting for is in flight; but a
      // connection that sent part of a request holds Bun's graceful close until Bun's header
      // timeout (docs/runtime-notes.md), which would take the logs' share of the budget.
      admin.closeAllConnections();
      return raceDeadline(closed, this.#flushRemainingMs(), cut);
    });
    this.#notifier.close();
    this.#orphans.stop();

    const drained = drain?.drained ?? 0;
    const aborted = drain?.aborted ?? 0;
    const closed = drain?.closed ?? 0;
    const killed = stopped?.killed ?? 0;
    const forced = aborted > closed || killed > 0 || cut.aborted || steps.failed || !drain || !stopped;
    const code = trigger.kind === "signal" ? (forced ? ExitCode.STOP_INCOMPLETE : ExitCode.OK) : trigger.code;
    // The last record; main() flushes the logs after it. A stop that did not end cleanly
    // (75, the child's failure, 78) is a warning: at --log-level warning it says why.
    this.#signals.quiet();
    // Lines dropped while stdout was stuck are said before the last record, and that record
    // is never dropped itself: both would otherwise wait for a queue that is still full.
    this.#deps.stdout.finish();
    this.#deps.stderr.finish();
    log.lifecycle[code === ExitCode.OK ? "info" : "warn"]("shutdown complete", {
      event: "shutdown.complete",
      reason: describe(trigger),
      exitCode: code,
      durationMs: steps.totalMs,
      phases: steps.phases,
      drained,
      aborted,
      closed,
      killed,
      fast: cut.aborted,
      childExitCode: stopped?.status?.code ?? null,
    });
    return code;
  }
}

/** What differs between two configurations, in the option table's order: values, and the files they name. */
function changesBetween(before: Config, after: Config): OptionKey[] {
  const changed = new Set([...changedOptions(before, after), ...changedFiles(before, after)]);
  return (Object.keys(OPTIONS) as OptionKey[]).filter((key) => changed.has(key));
}

function describe(trigger: StopTrigger): string {
  switch (trigger.kind) {
    case "signal":
      return trigger.signal;
    case "child-exit":
      return `child exited with code ${trigger.code}`;
    case "restart-failed":
      return "the child's restart failed";
    case "start-failed":
      return "start failed";
  }
}

/** Binds one listener, turning the runtime's error into one that names the options (where they came from) and address. */
async function listen<T>(
  option: string,
  hostname: string,
  port: number,
  bind: (onListenerFailed: NonNullable<ServeOptions["onListenerFailed"]>) => Promise<T>,
): Promise<T> {
  // Only Deno's listener fails after it opened (runtime notes); connections go on meanwhile.
  const onListenerFailed = (error: unknown, retryInMs: number) =>
    log.lifecycle.warn("The listener on {host}:{port} ({option}) failed: {error}; listening again in {retryInMs} ms", {
      event: "listener.failed",
      host: hostname,
      port,
      option,
      error: error instanceof Error ? error.message : String(error),
      retryInMs,
    });
  try {
    return await bind(onListenerFailed);
  } catch (error) {
    throw new Error(`Cannot listen on ${hostPort(hostname, port)} (${option}): ${listenFailureReason(error, hostname, port)}`, { cause: error });
  }
}

/**
 * Why a listener could not be opened, in the same words on both runtimes, which differ (Bun:
 * "Failed to start server. Is port 8080 in use?", "permission denied 127.0.0.1:80", and
 * "ENXIO: no such device or address" for a host name that does not resolve; Deno: "Address
 * already in use (os error 98)", "failed to lookup address information").
 */
export function listenFailureReason(error: unknown, hostname: string, port: number): string {
  const message = error instanceof Error ? error.message : String(error);
  switch (readErrorCode(error)) {
    case "EADDRINUSE":
      return `the address is already in use (another process listens on port ${port})`;
    case "EACCES":
    case "EPERM":
      return port < 1024 && port !== 0
        ? `permission denied: a port below 1024 needs root or the CAP_NET_BIND_SERVICE capability (or choose a port from 1024)`
        : "permission denied";
    case "EADDRNOTAVAIL":
      return `no network interface of this machine has the address ${hostname}`;
    case "ENXIO": // Bun's, for a name that does not resolve
      return `the host name ${hostname} does not resolve to an address`;
  }
  if (/failed to lookup address/i.test(message)) return `the host name ${hostname} does not resolve to an address`;
  return message;
}
