/**
 * @module The tracer provider pool (issue 3, items 4 and 7): built once across a create and
 * many reuses, a failed build changes nothing, a double release is ignored, shutdown at zero
 * flushes first and leaves nothing running, a changed key builds a second provider.
 */

import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace-base";
import { OtlpExporter, type SpanCounts } from "../../src/telemetry/otlp-exporter.ts";
import { type PoolProblem, TracerPool } from "../../src/telemetry/tracer-pool.ts";
import { epochMs, RequestTracer } from "../../src/telemetry/request-spans.ts";
import { buildTracerProvider, type TracerProvider } from "../../src/telemetry/tracer-provider.ts";
import { exporterKey, type TracingConfig, tracingConfigFromEnv } from "../../src/telemetry/tracing-config.ts";
import { type Receiver, startReceiver } from "../fixtures/otlp-receiver.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Starts spans on `provider` as a pipeline sampling every request does. */
function tracerOf(provider: TracerProvider) {
  const tracer = new RequestTracer(provider, new AlwaysOnSampler());
  return { startSpan: (name: string) => tracer.startServerSpan(name, ROOT_CONTEXT, epochMs()) };
}

interface Setup {
  receiver: Receiver;
  pool: TracerPool<TracerProvider>;
  problems: PoolProblem[];
  counts: SpanCounts;
  /** A config exporting to the receiver; batches wait a minute unless flushed. */
  config(env?: Record<string, string>): TracingConfig;
  /** The real build function, counting its calls. */
  build(config: TracingConfig): () => TracerProvider;
  builds: number;
}

function setup(): Setup {
  const receiver = startReceiver();
  cleanups.push(() => receiver.stop());
  const problems: PoolProblem[] = [];
  const counts = { exported: 0, dropped: 0 };
  const made: Setup = {
    receiver,
    problems,
    counts,
    pool: new TracerPool({ report: (problem) => problems.push(problem) }),
    builds: 0,
    config: (env = {}) =>
      tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "60000", ...env }),
    build: (config) => () => {
      made.builds++;
      const provider = buildTracerProvider(config, counts);
      cleanups.push(() => provider.shutdown()); // in case a test fails before releasing
      return provider;
    },
  };
  return made;
}

test("one create and 1,000 reuses build one provider and one exporter", async () => {
  const made = setup();
  const { pool, config, build, receiver, counts } = made;
  const exportersBefore = OtlpExporter.live;
  const settings = config();
  const leases = [];
  for (let i = 0; i <= 1000; i++) {
    // Each acquire computes its key from a config parsed afresh, as a reload does.
    leases.push(pool.acquire(exporterKey(config()), build(settings)));
  }
  expect({ builds: made.builds, built: pool.built, active: pool.active }).toEqual({ builds: 1, built: 1, active: 1 });
  expect(OtlpExporter.live).toBe(exportersBefore + 1);
  expect(new Set(leases.map((lease) => lease.provider)).size).toBe(1);
  expect(pool.references(exporterKey(settings))).toBe(1001);

  tracerOf(leases[0]!.provider).startSpan("GET").end();
  for (const lease of leases.slice(1)) await pool.release(lease);
  expect(pool.active).toBe(1); // still held by the first lease
  await pool.release(leases[0]!);
  expect({ built: pool.built, active: pool.active, exporters: OtlpExporter.live }).toEqual({ built: 1, active: 0, exporters: exportersBefore });
  expect(receiver.spans).toHaveLength(1);
  expect(counts).toEqual({ exported: 1, dropped: 0 });
});

test("a build that throws leaves the pool unchanged and the error reaches the caller", async () => {
  const { pool, config, build, problems } = setup();
  const settings = config();
  const key = exporterKey(settings);
  const first = pool.acquire(key, build(settings));

  const otherKey = exporterKey(config({ OTEL_SERVICE_NAME: "other" }));
  const failure = new Error("cannot build");
  expect(() => pool.acquire(otherKey, () => { throw failure; })).toThrow(failure);
  expect({ built: pool.built, active: pool.active, other: pool.references(otherKey), key: pool.references(key) })
    .toEqual({ built: 1, active: 1, other: 0, key: 1 });

  // The next acquire of the failed key builds; the first provider is untouched and counted right.
  const second = pool.acquire(otherKey, build(config({ OTEL_SERVICE_NAME: "other" })));
  expect(second.provider).not.toBe(first.provider);
  expect(pool.acquire(key, () => { throw new Error("not called: reused"); }).provider).toBe(first.provider);
  expect(pool.references(key)).toBe(2);
  expect(problems).toEqual([]);
});

test("releasing a lease twice does nothing the second time and is reported", async () => {
  const { pool, config, build, problems, receiver } = setup();
  const settings = config();
  const key = exporterKey(settings);
  const a = pool.acquire(key, build(settings));
  const b = pool.acquire(key, build(settings));

  await pool.release(a);
  await pool.release(a); // a naive counter would now reach zero and shut down b's provider
  expect(problems).toEqual([{ event: "tracer.release.repeated" }]);
  expect({ active: pool.active, references: pool.references(key) }).toEqual({ active: 1, references: 1 });

  tracerOf(b.provider).startSpan("still exported").end();
  await pool.release(b);
  expect(receiver.spans.map((span) => span.name)).toEqual(["still exported"]);
  expect(pool.active).toBe(0);
  await pool.release(b);
  expect(problems).toHaveLength(2);
});

test("at zero the provider is flushed, then shut down; failures are reported, not thrown", async () => {
  const { pool, config, build, receiver, counts, problems } = setup();
  const settings = config();
  const lease = pool.acquire(exporterKey(settings), build(settings));
  const tracer = tracerOf(lease.provider);
  for (let i = 0; i < 5; i++) tracer.startSpan(`queued ${i}`).end();
  expect(receiver.spans).toHaveLength(0); // waiting for the one-minute batch delay

  receiver.delayMs = 100; // the flush takes a while: release must wait for it
  await pool.release(lease);
  expect(receiver.spans).toHaveLength(5);
  expect(counts).toEqual({ exported: 5, dropped: 0 });
  expect({ active: pool.active, problems }).toEqual({ active: 0, problems: [] });
  tracer.startSpan("after shutdown").end(); // ignored by the shut-down processor
  await expect(lease.provider.forceFlush()).resolves.toBeUndefined();

  const broken = {
    forceFlush: () => Promise.reject(new Error("flush failed")),
    shutdown: () => Promise.reject(new Error("shutdown failed")),
  };
  const reported: PoolProblem[] = [];
  const brokenPool = new TracerPool<typeof broken>({ report: (problem) => reported.push(problem) });
  await brokenPool.release(brokenPool.acquire("k", () => broken)); // resolves: nothing thrown
  expect(reported.map((problem) => [problem.event, "error" in problem && String(problem.error)])).toEqual([
    ["tracer.flush.failed", "Error: flush failed"],
    ["tracer.shutdown.failed", "Error: shutdown failed"],
  ]);
  expect(brokenPool.active).toBe(0);
  expect(receiver.spans).toHaveLength(5);
});

test("at zero nothing is left running: a process doing acquire/release cycles exits by itself", async () => {
  const { receiver } = setup();
  const fixture = join(import.meta.dir, "fixtures/pool-cycles.ts");
  const started = performance.now();
  const child = Bun.spawn([BUN, fixture, receiver.url, "20", "3"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  cleanups.push(() => child.kill("SIGKILL"));
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);

  // Every timeout in the fixture is a minute: a timer left behind would hold the process that long.
  expect({ exitCode, stderr, signal: child.signalCode }).toEqual({ exitCode: 0, stderr: "", signal: null });
  expect(performance.now() - started).toBeLessThan(15_000);
  expect(JSON.parse(stdout)).toMatchObject({
    counts: { exported: 60, dropped: 0 },
    built: 20,
    active: 0,
    liveExporters: 0,
    problems: [],
  });
  expect(receiver.spans).toHaveLength(60);
  expect(receiver.errors).toEqual([]);
}, 60_000);

test("a changed key builds a second provider; the first stays alive until released", async () => {
  const { pool, config, build, receiver } = setup();
  const oldConfig = config();
  const newConfig = config({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces?changed` });
  const old = pool.acquire(exporterKey(oldConfig), build(oldConfig));
  const renewed = pool.acquire(exporterKey(newConfig), build(newConfig)); // a reload acquires before it releases
  expect(renewed.provider).not.toBe(old.provider);
  expect({ built: pool.built, active: pool.active }).toEqual({ built: 2, active: 2 });

  // A request still in flight on the old pipeline ends its span after the reload.
  tracerOf(old.provider).startSpan("in flight on the old pipeline").end();
  await pool.release(old);
  expect({ built: pool.built, active: pool.active }).toEqual({ built: 2, active: 1 });
  expect(receiver.spans.map((span) => span.name)).toEqual(["in flight on the old pipeline"]);

  tracerOf(renewed.provider).startSpan("on the new pipeline").end();
  await pool.release(renewed);
  expect(receiver.spans.map((span) => span.name)).toEqual(["in flight on the old pipeline", "on the new pipeline"]);
  expect(receiver.requests.map((request) => request.path)).toEqual(["/v1/traces", "/v1/traces"]);
  expect({ built: pool.built, active: pool.active }).toEqual({ built: 2, active: 0 });
});
