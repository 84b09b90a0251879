/**
 * @module The tracing side of a pipeline, loaded with OpenTelemetry only once tracing is on:
 * OpenTelemetry's modules cost several MiB of memory (measured: docs/runtime-notes.md), which
 * a process with tracing off never pays.
 */

import type { PipelineTracing } from "../app.ts";
import { endServerSpan, tracing } from "../middleware/tracing.ts";
import { RequestTracer } from "./request-spans.ts";
import { buildSampler } from "./sampler.ts";
import type { TracerProvider } from "./tracer-provider.ts";
import type { SamplerConfig } from "./tracing-config.ts";

export { buildTracerProvider, type TracerProvider } from "./tracer-provider.ts";

/** The tracing middleware and span ending of one pipeline, sampling with `sampler` on the shared `provider`. */
export function pipelineTracing(provider: TracerProvider, sampler: SamplerConfig): PipelineTracing {
  const tracer = new RequestTracer(provider, buildSampler(sampler));
  return { middleware: tracing(tracer), onEnd: endServerSpan() };
}
