/**
 * @module RequestTracer: each request's server span and its upstream call's client span,
 * recorded as one small object each and handed to the provider's processor when they end.
 * The SDK's Tracer and Span (with the SDK's samplers and ids, which this keeps) made about
 * twenty objects per span that lived as long as the request; under load the garbage
 * collector then spent about 27 us per traced request on them (8 with these records, 4.6
 * untraced; measured with BUN_JSC_logGC, docs/runtime-notes.md).
 */

import {
  type Attributes,
  type Context,
  SamplingDecision,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type TraceState,
} from "@opentelemetry/api";
import { RandomIdGenerator, type Sampler } from "@opentelemetry/sdk-trace-base";
import type { EncodableSpan } from "./otlp-json.ts";

/** Where ended spans go: the tracer provider that exports them. */
export interface SpanDestination {
  /** Takes a recorded span that ended (sampled ones are exported). */
  onEnd(span: RequestSpan): void;
}

const ids = new RandomIdGenerator();
/** Request spans have no links; the samplers are told so with one shared empty list. */
const NO_LINKS: never[] = Object.freeze([]) as never[];
/** Read once: it does not change, and reading it costs a call into the runtime. */
const TIME_ORIGIN = performance.timeOrigin;

/**
 * Milliseconds since the epoch from the monotonic clock, as the SDK's own span times: a span's
 * start and end come from the same clock, so its duration is never negative.
 */
export function epochMs(): number {
  return TIME_ORIGIN + performance.now();
}

/** The same for a `performance.now()` reading taken earlier. */
export function epochMsAt(monotonicMs: number): number {
  return TIME_ORIGIN + monotonicMs;
}

/** Starts request spans with one pipeline's sampler, for one provider. */
export class RequestTracer {
  constructor(readonly destination: SpanDestination, readonly sampler: Sampler) {}

  /**
   * A request's server span, continuing the trace context in `parent` (extracted from the
   * request's headers) or starting a trace. Not recording when the sampler says so; its
   * context is still passed on to the app.
   */
  startServerSpan(name: string, parent: Context, startMs: number): RequestSpan {
    const parentSpan = trace.getSpanContext(parent);
    const valid = parentSpan !== undefined && trace.isSpanContextValid(parentSpan);
    const traceId = valid ? parentSpan.traceId : ids.generateTraceId();
    const attributes: Attributes = {};
    const result = this.sampler.shouldSample(parent, traceId, name, SpanKind.SERVER, attributes, NO_LINKS);
    if (result.attributes) Object.assign(attributes, result.attributes);
    const context = spanContext(
      traceId,
      result.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      result.traceState ?? (valid ? parentSpan.traceState : undefined),
    );
    const recording = result.decision !== SamplingDecision.NOT_RECORD;
    return new RequestSpan(this.destination, recording, name, SpanKind.SERVER, context, valid ? parentSpan : undefined, startMs, attributes);
  }
}

/**
 * One span, as the OTLP encoding reads it. A child shares its parent's sampling decision:
 * the samplers sluice offers decide on the trace id or the parent, so they would decide the
 * same for it.
 */
export class RequestSpan implements EncodableSpan {
  readonly parentSpanContext: SpanContext | undefined;
  endMs = 0;
  statusCode = SpanStatusCode.UNSET;
  statusMessage: string | undefined;

  constructor(
    readonly destination: SpanDestination,
    /** False when the sampler dropped it: it only carries the trace context. */
    readonly recording: boolean,
    readonly name: string,
    readonly kind: SpanKind,
    readonly context: SpanContext,
    parent: SpanContext | undefined,
    readonly startMs: number,
    /** The span's attributes, set in place while it runs. */
    readonly attributes: Attributes,
  ) {
    this.parentSpanContext = parent;
  }

  /** A span under this one, in the same trace, starting now. */
  child(name: string, kind: SpanKind, attributes: Attributes): RequestSpan {
    const context = spanContext(this.context.traceId, this.context.traceFlags, this.context.traceState);
    return new RequestSpan(this.destination, this.recording, name, kind, context, this.context, epochMs(), attributes);
  }

  setError(message?: string): void {
    this.statusCode = SpanStatusCode.ERROR;
    this.statusMessage = message;
  }

  /** Ends the span now (once); a recording one goes to its provider. */
  end(): void {
    if (this.endMs !== 0) return;
    this.endMs = epochMs();
    if (this.recording) this.destination.onEnd(this);
  }

  /** Its W3C `traceparent` header value. */
  get traceparent(): string {
    return `00-${this.context.traceId}-${this.context.spanId}-0${this.context.traceFlags & TraceFlags.SAMPLED}`;
  }
}

/** A new span's context in `traceId`; one shape for all (an absent trace state is undefined). */
function spanContext(traceId: string, traceFlags: TraceFlags, traceState: TraceState | undefined): SpanContext {
  return { traceId, spanId: ids.generateSpanId(), traceFlags, traceState } as SpanContext;
}
