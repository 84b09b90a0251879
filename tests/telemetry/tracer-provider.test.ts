/**
 * @module buildTracerProvider and SamplingTracer against a real receiver: the resource, a
 * sampler per pipeline on one provider, and spans the full batch queue drops being counted.
 */

import { afterEach, expect, test } from "bun:test";
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from "@opentelemetry/api";
import type { SpanCounts } from "../../src/telemetry/otlp-exporter.ts";
import { buildSampler, SamplingTracer } from "../../src/telemetry/sampler.ts";
import { buildTracerProvider } from "../../src/telemetry/tracer-provider.ts";
import { type TracingConfig, tracingConfigFromEnv } from "../../src/telemetry/tracing-config.ts";
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

test("the resource holds the service name, the resource attributes and the SDK's own", async () => {
  const { receiver, config, counts } = setup({ OTEL_SERVICE_NAME: "edge", OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod" });
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  provider.getTracer("sluice").startSpan("GET").end();
  await provider.forceFlush();

  const [span] = await receiver.waitForSpans(1);
  expect(span!.resource).toMatchObject({ "service.name": "edge", "deployment.environment": "prod", "telemetry.sdk.name": "opentelemetry" });
  expect(counts).toEqual({ exported: 1, dropped: 0 });
});

test("each pipeline samples with its own sampler on one shared provider; remote parents are honoured", async () => {
  const { receiver, config, counts } = setup();
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  const shared = provider.getTracer("sluice");
  const off = new SamplingTracer(shared, buildSampler({ name: "parentbased_always_off", ratio: 1 }));
  const on = new SamplingTracer(shared, buildSampler({ name: "parentbased_traceidratio", ratio: 1 }));

  const dropped = off.startSpan("off root", { kind: SpanKind.SERVER });
  expect(dropped.isRecording()).toBe(false);
  dropped.end();
  on.startSpan("on root", { kind: SpanKind.SERVER }).end();

  // The parent-based samplers follow a sampled remote parent, whatever their root sampler says.
  const parent = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331", traceFlags: TraceFlags.SAMPLED, isRemote: true };
  const child = off.startSpan("off child of sampled", { kind: SpanKind.SERVER }, trace.setSpanContext(ROOT_CONTEXT, parent));
  // A span started from a context holding a SamplingTracer's span keeps that tracer's sampler.
  const grandchild = shared.startSpan("upstream", { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, child));
  grandchild.end();
  child.end();
  await provider.forceFlush();

  expect((await receiver.waitForSpans(3)).map((span) => span.name).sort()).toEqual(["off child of sampled", "on root", "upstream"]);
  expect(receiver.spans.find((span) => span.name === "upstream")!.traceId).toBe(parent.traceId);
});

test("spans dropped because the batch queue is full are counted", async () => {
  const { receiver, config, counts } = setup({ OTEL_BSP_MAX_QUEUE_SIZE: "3", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "3" });
  receiver.delayMs = 300; // the queue cannot drain while the first batch is being sent
  const provider = buildTracerProvider(config, counts);
  cleanups.push(() => provider.shutdown());
  const tracer = provider.getTracer("sluice");
  for (let i = 0; i < 10; i++) tracer.startSpan(`span ${i}`).end();
  await provider.forceFlush();

  expect(counts.exported + counts.dropped).toBe(10);
  expect(counts.dropped).toBeGreaterThanOrEqual(4); // 3 in the batch being sent, at most 3 queued behind it
  expect(receiver.spans).toHaveLength(counts.exported);
});
