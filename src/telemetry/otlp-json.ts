/**
 * @module The OTLP JSON encoding of an ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): hex ids, unix-nano
 * times as strings, enums as numbers, attributes as key/value lists.
 */

import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from "@opentelemetry/api";
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace-base";

type AnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number | string }
  | { arrayValue: { values: AnyValue[] } }
  | Record<string, never>; // an empty AnyValue: a null entry of an array

interface KeyValue {
  key: string;
  value: AnyValue;
}

// Span flags (trace.proto): the W3C trace flags in the low byte, then whether the parent's
// remoteness is known (bit 8) and whether it is remote (bit 9).
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

/** Encodes `spans` as one request body, grouped by resource, then by instrumentation scope. */
export function encodeTraceRequest(spans: readonly ReadableSpan[]): string {
  const byResource = new Map<ReadableSpan["resource"], Map<string, ReadableSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (!byScope) byResource.set(span.resource, (byScope = new Map()));
    const { name, version = "", schemaUrl = "" } = span.instrumentationScope;
    const scopeKey = `${name}\n${version}\n${schemaUrl}`;
    const group = byScope.get(scopeKey);
    if (group) group.push(span);
    else byScope.set(scopeKey, [span]);
  }
  const resourceSpans = [...byResource].map(([resource, byScope]) => ({
    resource: { attributes: keyValues(resource.attributes), droppedAttributesCount: 0 },
    scopeSpans: [...byScope.values()].map((group) => {
      const { name, version, schemaUrl } = group[0]!.instrumentationScope;
      return {
        scope: version === undefined ? { name } : { name, version },
        spans: group.map(encodeSpan),
        ...(schemaUrl ? { schemaUrl } : {}),
      };
    }),
    ...(resource.schemaUrl ? { schemaUrl: resource.schemaUrl } : {}),
  }));
  return JSON.stringify({ resourceSpans });
}

function encodeSpan(span: ReadableSpan) {
  const context = span.spanContext();
  const parent = span.parentSpanContext;
  return {
    traceId: context.traceId,
    spanId: context.spanId,
    ...traceState(context),
    ...(parent ? { parentSpanId: parent.spanId } : {}),
    flags: flags(context, parent?.isRemote),
    name: span.name,
    kind: span.kind + 1, // the API's SpanKind starts at INTERNAL = 0; OTLP keeps 0 for UNSPECIFIED
    startTimeUnixNano: unixNano(span.startTime),
    endTimeUnixNano: unixNano(span.endTime),
    attributes: keyValues(span.attributes),
    droppedAttributesCount: span.droppedAttributesCount,
    events: span.events.map(encodeEvent),
    droppedEventsCount: span.droppedEventsCount,
    links: span.links.map(encodeLink),
    droppedLinksCount: span.droppedLinksCount,
    // The API's SpanStatusCode (UNSET 0, OK 1, ERROR 2) is OTLP's StatusCode.
    status: span.status.message ? { code: span.status.code, message: span.status.message } : { code: span.status.code },
  };
}

function encodeEvent(event: TimedEvent) {
  return {
    timeUnixNano: unixNano(event.time),
    name: event.name,
    attributes: keyValues(event.attributes ?? {}),
    droppedAttributesCount: event.droppedAttributesCount ?? 0,
  };
}

function encodeLink(link: Link) {
  return {
    traceId: link.context.traceId,
    spanId: link.context.spanId,
    ...traceState(link.context),
    attributes: keyValues(link.attributes ?? {}),
    droppedAttributesCount: link.droppedAttributesCount ?? 0,
    flags: flags(link.context, link.context.isRemote),
  };
}

function traceState(context: SpanContext): { traceState?: string } {
  const serialized = context.traceState?.serialize();
  return serialized ? { traceState: serialized } : {};
}

function flags(context: SpanContext, isRemote: boolean | undefined): number {
  return (context.traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (isRemote ? FLAGS_IS_REMOTE : 0);
}

/** [seconds, nanoseconds] as a decimal string of nanoseconds (a uint64 does not fit a JSON number). */
export function unixNano([seconds, nanos]: HrTime): string {
  return seconds === 0 ? String(nanos) : `${seconds}${String(nanos).padStart(9, "0")}`;
}

function keyValues(attributes: Attributes): KeyValue[] {
  const list: KeyValue[] = [];
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) list.push({ key, value: anyValue(value) });
  }
  return list;
}

function anyValue(value: AttributeValue | null | undefined): AnyValue {
  switch (typeof value) {
    case "string":
      return { stringValue: value };
    case "boolean":
      return { boolValue: value };
    case "number":
      // int64 is a string in proto3 JSON; non-finite doubles are the strings "NaN", "Infinity", "-Infinity".
      if (Number.isSafeInteger(value)) return { intValue: String(value) };
      return { doubleValue: Number.isFinite(value) ? value : String(value) };
    default:
      if (Array.isArray(value)) return { arrayValue: { values: value.map((item) => anyValue(item)) } };
      return {};
  }
}
