/**
 * @module Sampling chosen per pipeline on a shared tracer provider. A provider's sampler is
 * fixed when it is built, yet the provider outlives reloads; so the provider samples with
 * ContextSampler, which asks the sampler the pipeline put in the span's parent context
 * (SamplingTracer does that). A reload that changes only the sampler needs no new provider,
 * and requests still in flight on the old pipeline keep the old sampler.
 */

import {
  type Attributes,
  type Context,
  context as contextApi,
  createContextKey,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanKind,
  type SpanOptions,
  type Tracer,
} from "@opentelemetry/api";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  type Sampler,
  type SamplingResult,
  TraceIdRatioBasedSampler,
} from "@opentelemetry/sdk-trace-base";
import type { SamplerConfig } from "./tracing-config.ts";

const SAMPLER_KEY = createContextKey("sluice sampler");

/** The sampler a SamplerConfig names (the OTEL_TRACES_SAMPLER values). */
export function buildSampler({ name, ratio }: SamplerConfig): Sampler {
  switch (name) {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return new TraceIdRatioBasedSampler(ratio);
    case "parentbased_always_on":
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
  }
}

/** The specification's default, for spans started without a SamplingTracer. */
const DEFAULT_SAMPLER = buildSampler({ name: "parentbased_always_on", ratio: 1 });

/** The provider's sampler: delegates to the sampler found in the parent context. */
export class ContextSampler implements Sampler {
  shouldSample(context: Context, traceId: string, spanName: string, spanKind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
    const sampler = (context.getValue(SAMPLER_KEY) as Sampler | undefined) ?? DEFAULT_SAMPLER;
    return sampler.shouldSample(context, traceId, spanName, spanKind, attributes, links);
  }

  toString(): string {
    return "ContextSampler";
  }
}

/**
 * A pipeline's tracer: starts spans on the shared provider's tracer with `sampler` in the
 * parent context. Child spans started from a context that holds one of its spans inherit it.
 */
export class SamplingTracer implements Tracer {
  /** The root context with the sampler in it: most requests start a trace, and need no copy. */
  readonly #root: Context;

  constructor(readonly tracer: Tracer, readonly sampler: Sampler) {
    this.#root = ROOT_CONTEXT.setValue(SAMPLER_KEY, sampler);
  }

  /** `context` with this tracer's sampler in it (each setValue copies the context). */
  withSampler(context: Context): Context {
    if (context === ROOT_CONTEXT) return this.#root;
    return context.getValue(SAMPLER_KEY) === this.sampler ? context : context.setValue(SAMPLER_KEY, this.sampler);
  }

  startSpan(name: string, options?: SpanOptions, context: Context = contextApi.active()): Span {
    return this.tracer.startSpan(name, options, this.withSampler(context));
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, context: Context, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    ...rest: [F] | [SpanOptions, F] | [SpanOptions, Context, F]
  ): ReturnType<F> {
    const fn = rest[rest.length - 1] as F;
    const options = rest.length > 1 ? (rest[0] as SpanOptions) : {};
    const parent = this.withSampler(rest.length > 2 ? (rest[1] as Context) : contextApi.active());
    return this.tracer.startActiveSpan(name, options, parent, fn) as ReturnType<F>;
  }
}
