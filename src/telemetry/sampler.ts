/**
 * @module The sampler an OTEL_TRACES_SAMPLER value names. Each pipeline has its own (see
 * request-spans.ts), so a reload that changes only the sampler needs no new provider, and
 * requests still in flight on the old pipeline keep the old sampler.
 */

import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  type Sampler,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import type { SamplerConfig } from "./tracing-config.ts";

/** The sampler a SamplerConfig names (the OTEL_TRACES_SAMPLER values). */
export function buildSampler({ name, ratio }: SamplerConfig): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return ratioSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratioSampler(ratio) });
  }
}

/**
 * The ratio sampler; at 0 and 1 the sampler that decides the same without reading the trace
 * id (it runs for every request, and sampling everything is a common setting).
 */
function ratioSampler(ratio: number): Sampler {
  if (ratio >= 1) return new AlwaysOnSampler();
  if (ratio <= 0) return new AlwaysOffSampler();
  return new TraceIdRatioBasedSampler(ratio);
}
