/**
 * @module Builds the tracer provider for a TracingConfig: OTLP exporter, batch span processor,
 * resource. The pool calls it on its create path only: everything with a side effect is made here.
 */

import { createNoopMeter, type Meter, type MeterProvider } from "@opentelemetry/api";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type BufferConfig } from "@opentelemetry/sdk-trace-base";
import { OtlpExporter, type SpanCounts } from "./otlp-exporter.ts";
import { ContextSampler } from "./sampler.ts";
import type { TracingConfig } from "./tracing-config.ts";

/**
 * Every setting is passed explicitly, so the SDK's own fallbacks to the OTEL_BSP_* variables
 * do not apply (it still reads OTEL_TRACES_SAMPLER and the OTEL_*_LIMIT variables while
 * building, then uses the sampler given here). `counts` gathers spans exported, and dropped
 * by the exporter or by the batch queue when full, across every provider built.
 */
export function buildTracerProvider(config: TracingConfig, counts: SpanCounts): BasicTracerProvider {
  const exporter = new OtlpExporter({ url: config.endpoint, headers: config.headers, timeoutMs: config.timeoutMs, counts });
  const { batch } = config;
  const processorConfig: BufferConfig & { selfObsMeterProvider: MeterProvider } = {
    scheduledDelayMillis: batch.scheduledDelayMs,
    exportTimeoutMillis: batch.exportTimeoutMs,
    maxQueueSize: batch.maxQueueSize,
    maxExportBatchSize: batch.maxExportBatchSize,
    selfObsMeterProvider: queueDropCounter(counts),
  };
  const resource = defaultResource().merge(
    resourceFromAttributes({ ...config.resourceAttributes, "service.name": config.serviceName }),
  );
  return new BasicTracerProvider({
    resource,
    sampler: new ContextSampler(),
    spanProcessors: [new BatchSpanProcessor(exporter, processorConfig)],
    forceFlushTimeoutMillis: batch.exportTimeoutMs,
  });
}

/**
 * The batch processor drops spans when its queue is full and counts them only through its
 * self-observability meter (`otel.sdk.processor.span.processed` with error.type=queue_full);
 * this meter turns that into `counts.dropped`. `selfObsMeterProvider` is marked experimental
 * in @opentelemetry/sdk-trace 2.x and missing from sdk-trace-base's types, hence the cast
 * above; tests/telemetry/tracer-provider.test.ts pins the behaviour.
 */
function queueDropCounter(counts: SpanCounts): MeterProvider {
  const meter: Meter = Object.create(createNoopMeter());
  meter.createCounter = () => ({
    add(value, attributes) {
      if (attributes?.["error.type"] === "queue_full") counts.dropped += value;
    },
  });
  return { getMeter: () => meter };
}
