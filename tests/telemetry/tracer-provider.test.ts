/**
 * @module buildTracerProvider and RequestTracer against a real receiver: the resource and
 * scope, a sampler per pipeline on one provider, the trace context passed on (also when not
 * sampled), span times, and spans the full batch queue drops being counted.
 */

import { afterEach, expect, test } from "bun:test";
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from "@opentelemetry/api";
import { TraceState } from "@opentelemetry/core";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace-base";
import type { SpanCounts } from "../../src/telemetry/otlp-exporter.ts";
import { epochMs, RequestTracer } from "../../src/telemetry/request-spans.ts";
import { buildSampler } from "../../src/telemetry/sampler.ts";
import { buildTracerProvider } from "../../src/telemetry/tracer-provider.ts";
import { type TracingConfig, tracingConfigFromEnv } from "../../src/telemetry/tracing-config.ts";
import { VERSION } from "../../src/version.ts";
import { type Receiver, startReceiver } from "../fixtures/otlp-receiver.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function setup(env: Record<string, string> = {}): { receiver: Receiver; config: TracingConfig; counts: SpanCounts } {
  const receiver = startReceiver();
  cleanups.push(() => receiver.stop());
  const config = tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "60000", ...env });
  return { receiver, config, counts: { exported: 0, dropped: 0 } };
}

const REMOTE_PARENT = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: TraceFlags.SAMPLED, isRemote: true };

test("the resource holds the service name, the resource attributes and the SDK's own; the scope is sluice's", async () => {
  const { receiver, config, counts } = setup({ OTEL_SERVICE_NAME: "edge", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod" });
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  new RequestTracer(provider, new AlwaysOnSampler()).startServerSpan("GET", ROOT_CONTEXT, epochMs()).end();
  await provider.forceFlush();

  const [span] = await receiver.waitForSpans(1);
  expect(span!.resource).toMatchObject({ "service.name": "edge", "deployment.environment": "prod", "telemetry.sdk.name": "opentelemetry" });
  expect(span!.scope).toEqual({ name: "sluice", version: VERSION });
  expect(counts).toEqual({ exported: 1, dropped: 0 });
});

test("each pipeline samples with its own sampler on one shared provider; remote parents are honoured", async () => {
  const { receiver, config, counts } = setup();
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  const off = new RequestTracer(provider, buildSampler({ name: "parentbased_always_off", ratio: 1 }));
  const on = new RequestTracer(provider, buildSampler({ name: "parentbased_traceidratio", ratio: 1 }));

  const dropped = off.startServerSpan("off root", ROOT_CONTEXT, epochMs());
  expect(dropped.recording).toBe(false);
  dropped.end();
  on.startServerSpan("on root", ROOT_CONTEXT, epochMs()).end();

  // The parent-based samplers follow a sampled remote parent, whatever their root sampler says.
  const child = off.startServerSpan("off child of sampled", trace.setSpanContext(ROOT_CONTEXT, REMOTE_PARENT), epochMs());
  // A span under it shares its trace and its sampling decision.
  const grandchild = child.child("upstream", SpanKind.CLIENT, { "http.request.method": "GET" });
  grandchild.end();
  child.end();
  await provider.forceFlush();

  const spans = await receiver.waitForSpans(3);
  expect(spans.map((span) => span.name).sort()).toEqual(["off child of sampled", "on root", "upstream"]);
  const server = spans.find((span) => span.name === "off child of sampled")!;
  const upstream = spans.find((span) => span.name === "upstream")!;
  expect(server).toMatchObject({ traceId: REMOTE_PARENT.traceId, parentSpanId: REMOTE_PARENT.spanId, kind: 2 });
  expect(upstream).toMatchObject({ traceId: REMOTE_PARENT.traceId, parentSpanId: server.spanId, kind: 3, attributes: { "http.request.method": "GET" } });
  expect(spans.find((span) => span.name === "on root")!.parentSpanId).toBeUndefined();
});

test("the trace context passed on names the span, with the sampled flag and the trace state; unsampled ones pass it on too", () => {
  const provider = buildTracerProvider(setup().config, { exported: 0, dropped: 0 });
  cleanups.push(() => provider.shutdown());
  const parent = trace.setSpanContext(ROOT_CONTEXT, { ...REMOTE_PARENT, traceState: new TraceState("vendor=value") });
  const sampled = new RequestTracer(provider, new AlwaysOnSampler()).startServerSpan("GET", parent, epochMs());
  expect(sampled.traceparent).toBe(`00-${REMOTE_PARENT.traceId}-${sampled.context.spanId}-01`);
  expect(sampled.context.spanId).toMatch(/^[0-9a-f]{16}$/);
  expect(sampled.context.spanId).not.toBe(REMOTE_PARENT.spanId);
  expect(sampled.context.traceState?.serialize()).toBe("vendor=value");

  const unsampled = new RequestTracer(provider, buildSampler({ name: "always_off", ratio: 1 })).startServerSpan("GET", ROOT_CONTEXT, epochMs());
  expect(unsampled.recording).toBe(false);
  expect(unsampled.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
});

test("a span's times are its start and its end, in nanoseconds since the epoch", async () => {
  const { receiver, config, counts } = setup();
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  const before = BigInt(Date.now() - 1) * 1_000_000n;
  const span = new RequestTracer(provider, new AlwaysOnSampler()).startServerSpan("GET", ROOT_CONTEXT, epochMs());
  await Bun.sleep(20);
  span.end();
  const after = BigInt(Date.now() + 1) * 1_000_000n;
  await provider.forceFlush();

  const [received] = await receiver.waitForSpans(1);
  expect(received!.startTimeUnixNano).toBeGreaterThanOrEqual(before);
  expect(received!.endTimeUnixNano).toBeLessThanOrEqual(after);
  const ms = Number(received!.endTimeUnixNano - received!.startTimeUnixNano) / 1e6;
  expect(ms).toBeGreaterThanOrEqual(19);
  expect(ms).toBeLessThan(5_000);
});

test("spans dropped because the batch queue is full are counted", async () => {
  const { receiver, config, counts } = setup({ OTEL_BSP_MAX_QUEUE_SIZE: "3", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "3" });
  receiver.delayMs = 300; // the queue cannot drain while the first batch is being sent
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  const tracer = new RequestTracer(provider, new AlwaysOnSampler());
  for (let i = 0; i < 10; i++) tracer.startServerSpan(`span ${i}`, ROOT_CONTEXT, epochMs()).end();
  await provider.forceFlush();

  expect(counts.exported + counts.dropped).toBe(10);
  expect(counts.dropped).toBeGreaterThanOrEqual(4); // 3 in the batch being sent, at most 3 queued behind it
  expect(receiver.spans).toHaveLength(counts.exported);
});
