/**
 * @module Builds the tracer provider for a TracingConfig: OTLP exporter, batch span processor,
 * resource. The pool calls it on its create path only: everything with a side effect is made here.
 */

import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import { EncodingBatchProcessor } from "./encoding-batch-processor.ts";
import { OtlpExporter, type SpanCounts } from "./otlp-exporter.ts";
import { ContextSampler } from "./sampler.ts";
import type { TracingConfig } from "./tracing-config.ts";

/**
 * The SDK reads OTEL_TRACES_SAMPLER and the OTEL_*_LIMIT variables while building, then uses
 * the sampler given here; the OTEL_BSP_* settings are the processor's, from the config.
 * `counts` gathers spans exported, and dropped by the exporter or by the batch queue when
 * full, across every provider built.
 */
export function buildTracerProvider(config: TracingConfig, counts: SpanCounts): BasicTracerProvider {
  const exporter = new OtlpExporter({ url: config.endpoint, headers: config.headers, timeoutMs: config.timeoutMs, counts });
  const resource = defaultResource().merge(
    resourceFromAttributes({ ...config.resourceAttributes, "service.name": config.serviceName }),
  );
  return new BasicTracerProvider({
    resource,
    sampler: new ContextSampler(),
    spanProcessors: [new EncodingBatchProcessor(exporter, config.batch, counts)],
    forceFlushTimeoutMillis: config.batch.exportTimeoutMs,
  });
}
