/** @module A small Prometheus registry: counters, gauges and histograms rendered as text format 0.0.4. */

import type { CacheEvent } from "../middleware/cache.ts";

type Labels = Record<string, string>;

interface Metric {
  render(): string;
}

const NEEDS_ESCAPE = /[\\"\n]/;

/** `{name="value",...}` as Prometheus writes labels ("" for none); runs per increment, so no array work. */
function labelKey(labels: Labels): string {
  let key = "";
  for (const name in labels) {
    let value = labels[name]!;
    if (NEEDS_ESCAPE.test(value)) value = value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
    key += `${key === "" ? "{" : ","}${name}="${value}"`;
  }
  return key === "" ? "" : `${key}}`;
}

function header(name: string, help: string, type: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

export interface LabelOptions {
  /**
   * True for a metric with labels: it has no sample until a label set gets a value (an
   * unlabelled metric is exported as 0 from the start). Implied by `known`.
   * @default false
   */
  labelled?: boolean;
  /**
   * Label sets known in advance, exported as 0 from the start: a series that appears only
   * with its first increment hides that increment from rate() and increase(), so an alert
   * on the first failed reload would never fire (Prometheus: "avoid missing metrics").
   * @default []
   */
  known?: readonly Labels[];
}

/** Values by label set, rendered as one Prometheus metric family. */
abstract class LabelledMetric implements Metric {
  protected readonly values = new Map<string, number>();
  protected abstract readonly type: "counter" | "gauge";
  readonly #labelled: boolean;

  constructor(readonly name: string, readonly help: string, { labelled = false, known = [] }: LabelOptions = {}) {
    this.#labelled = labelled || known.length > 0;
    for (const labels of known) this.values.set(labelKey(labels), 0);
  }

  value(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  render(): string {
    const lines = [...this.values].map(([key, value]) => `${this.name}${key} ${value}\n`);
    if (lines.length === 0 && !this.#labelled) lines.push(`${this.name} 0\n`);
    return header(this.name, this.help, this.type) + lines.join("");
  }
}

export class Counter extends LabelledMetric {
  protected readonly type = "counter";

  inc(labels: Labels = {}, by = 1): void {
    const key = labelKey(labels);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
}

export class Gauge extends LabelledMetric {
  protected readonly type = "gauge";

  set(value: number, labels: Labels = {}): void {
    this.values.set(labelKey(labels), value);
  }
}

/**
 * A counter with one label (status codes, cache events): counted by the label's value, so an
 * increment per request does no string work.
 */
export class CounterByLabel<V extends number | string> implements Metric {
  #values = new Map<V, number>();
  /** `known`: the label's values known in advance, exported as 0 from the start (see LabelOptions). */
  constructor(readonly name: string, readonly help: string, readonly label: string, known: readonly V[] = []) {
    for (const value of known) this.#values.set(value, 0);
  }

  inc(value: V): void {
    this.#values.set(value, (this.#values.get(value) ?? 0) + 1);
  }

  value(labelValue: V): number {
    return this.#values.get(labelValue) ?? 0;
  }

  render(): string {
    const lines = [...this.#values].map(([label, value]) => `${this.name}${labelKey({ [this.label]: String(label) })} ${value}\n`);
    return header(this.name, this.help, "counter") + lines.join("");
  }
}

/** A histogram without labels; buckets are upper bounds in the metric's unit. */
export class Histogram implements Metric {
  #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]!) {
        this.#counts[i]!++;
        return;
      }
    }
  }

  render(): string {
    let cumulative = 0;
    const lines = this.buckets.map((bound, i) => {
      cumulative += this.#counts[i]!;
      return `${this.name}_bucket{le="${bound}"} ${cumulative}\n`;
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.#count}\n`);
    lines.push(`${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`);
    return header(this.name, this.help, "histogram") + lines.join("");
  }
}

/** A value read when /metrics is scraped (counts kept elsewhere, such as the tracer pool's). */
class Sampled implements Metric {
  constructor(readonly name: string, readonly help: string, readonly type: "counter" | "gauge", readonly read: () => number) {}

  render(): string {
    return header(this.name, this.help, this.type) + `${this.name} ${this.read()}\n`;
  }
}

export interface TracingCounts {
  providersBuilt: number;
  providersActive: number;
  spansExported: number;
  spansDropped: number;
}

export interface CacheCounts {
  bytes: number;
  entries: number;
}

/** The metrics sluice exports; one instance per process, shared by every pipeline. */
export class Metrics {
  readonly requestsInFlight = new Gauge("sluice_requests_in_flight", "Requests being served now");
  readonly requests = new CounterByLabel<number>("sluice_requests_total", "Requests answered, by status code", "code");
  readonly requestDuration = new Histogram(
    "sluice_request_duration_seconds",
    "Time from request arrival to the end of the response body",
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  );
  readonly heldRequests = new Gauge("sluice_requests_held", "Requests waiting for the child to become ready");
  readonly childRestarts = new Counter("sluice_child_restarts_total", "Times the child was restarted");
  readonly childState = new Gauge("sluice_child_state", "1 for the child's current state, 0 for the others", { labelled: true });
  readonly ready = new Gauge("sluice_ready", "1 when /readyz answers 200");
  readonly reloads = new Counter("sluice_reloads_total", "Configuration reloads (SIGHUP), by result", {
    known: [{ result: "ok" }, { result: "error" }],
  });
  /** A deploy script waits for one of these to go up (deploy/rolling-restart.sh): skipped ones too. */
  readonly rollingRestarts = new Counter("sluice_rolling_restarts_total", "Rolling restarts (SIGUSR2), by result", {
    known: [{ result: "ok" }, { result: "failed" }, { result: "skipped" }],
  });
  readonly shutdownPhase = new Gauge("sluice_shutdown_phase_seconds", "Duration of each phase of the stop, set as it ends", { labelled: true });
  readonly outputDropped = new Counter(
    "sluice_output_dropped_lines_total",
    "sluice's own log records dropped because stdout or stderr was not read for long (the child's output waits instead), by stream",
    { known: [{ stream: "stdout" }, { stream: "stderr" }] },
  );
  readonly orphansReaped = new Counter("sluice_orphans_reaped_total", "Orphaned processes reaped as PID 1");
  readonly cacheEvents = new CounterByLabel<CacheEvent>(
    "sluice_cache_events_total",
    "Response cache events: hit, not-modified, miss, bypass, collapsed, stored, too-large, cut",
    "event",
    ["hit", "not-modified", "miss", "bypass", "collapsed", "stored", "too-large", "cut"],
  );
  #cache: () => CacheCounts = () => ({ bytes: 0, entries: 0 });
  readonly #cacheMetrics = [
    new Sampled("sluice_cache_bytes", "Bytes the response cache holds", "gauge", () => this.#cache().bytes),
    new Sampled("sluice_cache_entries", "Responses the response cache holds", "gauge", () => this.#cache().entries),
  ];
  #tracing: () => TracingCounts = () => ({ providersBuilt: 0, providersActive: 0, spansExported: 0, spansDropped: 0 });
  readonly #tracingMetrics = [
    new Sampled("sluice_tracer_providers_built_total", "Tracer providers built", "counter", () => this.#tracing().providersBuilt),
    new Sampled("sluice_tracer_providers_active", "Tracer providers alive (in use or shutting down)", "gauge", () => this.#tracing().providersActive),
    new Sampled("sluice_spans_exported_total", "Spans the OTLP exporter delivered", "counter", () => this.#tracing().spansExported),
    new Sampled("sluice_spans_dropped_total", "Spans lost: export failed or the queue was full", "counter", () => this.#tracing().spansDropped),
  ];

  /** Where the tracing metrics read their values. */
  sampleTracing(read: () => TracingCounts): void {
    this.#tracing = read;
  }

  /** Where the cache gauges read their values. */
  sampleCache(read: () => CacheCounts): void {
    this.#cache = read;
  }

  render(): string {
    return [
      this.requestsInFlight,
      this.requests,
      this.requestDuration,
      this.heldRequests,
      this.childRestarts,
      this.childState,
      this.ready,
      this.reloads,
      this.rollingRestarts,
      this.shutdownPhase,
      this.outputDropped,
      this.orphansReaped,
      this.cacheEvents,
      ...this.#cacheMetrics,
      ...this.#tracingMetrics,
    ].map((m) => m.render()).join("");
  }
}
