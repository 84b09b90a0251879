/**
 * @module The tracing side of a pipeline, loaded with OpenTelemetry only once tracing is on:
 * OpenTelemetry's modules cost several MiB of memory (measured: docs/runtime-notes.md), which
 * a process with tracing off never pays.
 */

import type { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
import type { PipelineTracing } from "../app.ts";
import { endServerSpan, tracing } from "../middleware/tracing.ts";
import { VERSION } from "../version.ts";
import { buildSampler, SamplingTracer } from "./sampler.ts";
import type { SamplerConfig } from "./tracing-config.ts";

export { buildTracerProvider } from "./tracer-provider.ts";

/** The tracing middleware and span ending of one pipeline, sampling with `sampler` on the shared `provider`. */
export function pipelineTracing(provider: BasicTracerProvider, sampler: SamplerConfig): PipelineTracing {
  const tracer = new SamplingTracer(provider.getTracer("sluice", VERSION), buildSampler(sampler));
  return { middleware: tracing(tracer), onEnd: endServerSpan() };
}
