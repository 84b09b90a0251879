/**
 * @module The tracer provider for a TracingConfig: OTLP exporter, batch span processor,
 * resource. The pool calls buildTracerProvider on its create path only: everything with a
 * side effect is made here. Request spans (request-spans.ts) end into it.
 */

import type { InstrumentationScope } from "@opentelemetry/core";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import { VERSION } from "../version.ts";
import { EncodingBatchProcessor } from "./encoding-batch-processor.ts";
import { OtlpExporter, type SpanCounts } from "./otlp-exporter.ts";
import type { RequestSpan, SpanDestination } from "./request-spans.ts";
import type { TracingConfig } from "./tracing-config.ts";

/** The instrumentation scope of every span sluice makes. */
const SCOPE: InstrumentationScope = { name: "sluice", version: VERSION };

/**
 * One exporter's spans: what the pipelines with the same exporter settings share across
 * reloads (see tracer-pool.ts). The OTEL_BSP_* settings are the processor's, from the config.
 */
export class TracerProvider implements SpanDestination {
  readonly #processor: EncodingBatchProcessor;

  constructor(config: TracingConfig, counts: SpanCounts) {
    // One export is one request: the exporter's timeout (OTEL_EXPORTER_OTLP_TIMEOUT) and the
    // processor's (OTEL_BSP_EXPORT_TIMEOUT) both bound it, the shorter wins.
    const timeoutMs = Math.min(config.timeoutMs, config.batch.exportTimeoutMs);
    const exporter = new OtlpExporter({ url: config.endpoint, headers: config.headers, timeoutMs, counts });
    const resource = defaultResource().merge(
      resourceFromAttributes({ ...config.resourceAttributes, "service.name": config.serviceName }),
    );
    this.#processor = new EncodingBatchProcessor(exporter, config.batch, counts, resource, SCOPE);
  }

  onEnd(span: RequestSpan): void {
    this.#processor.onEnd(span);
  }

  /** Spans ended and not yet exported or counted as dropped (see EncodingBatchProcessor). */
  get unexported(): number {
    return this.#processor.unexported;
  }

  /** Exports every span ended so far. */
  forceFlush(): Promise<void> {
    return this.#processor.forceFlush();
  }

  /** Flushes, then drops (and counts) every span that ends later. */
  shutdown(): Promise<void> {
    return this.#processor.shutdown();
  }
}

/**
 * Builds the provider; `counts` gathers spans exported, and dropped by the exporter or by the
 * batch queue when full, across every provider built.
 */
export function buildTracerProvider(config: TracingConfig, counts: SpanCounts): TracerProvider {
  return new TracerProvider(config, counts);
}
