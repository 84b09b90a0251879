/**
 * @module The OTLP JSON encoding of an ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): hex ids, unix-nano
 * times as strings, enums as numbers, attributes as key/value lists. Written out as text
 * directly: building the objects for JSON.stringify cost more than the spans themselves
 * (about 3 us a span, measured in process), and this runs for every span exported. A span's
 * text is gathered as parts and joined once: concatenating them made a tree of partial
 * strings per span, and more than twice the garbage (docs/runtime-notes.md).
 */

import type { Attributes, AttributeValue, HrTime, Link, SpanContext } from "@opentelemetry/api";
import type { ReadableSpan, TimedEvent } from "@opentelemetry/sdk-trace-base";
import { jsonString } from "../json-string.ts";

// Span flags (trace.proto): the W3C trace flags in the low byte, then whether the parent's
// remoteness is known (bit 8) and whether it is remote (bit 9).
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

/** What the encoding reads of a span: the SDK's spans and sluice's request spans have it. */
export type EncodableSpan = Pick<
  ReadableSpan,
  | "name"
  | "kind"
  | "spanContext"
  | "parentSpanContext"
  | "startTime"
  | "endTime"
  | "status"
  | "attributes"
  | "links"
  | "events"
  | "resource"
  | "instrumentationScope"
  | "droppedAttributesCount"
  | "droppedEventsCount"
  | "droppedLinksCount"
>;

/** Encodes `spans` as one request body, grouped by resource, then by instrumentation scope. */
export function encodeTraceRequest(spans: readonly EncodableSpan[]): string {
  const byResource = new Map<EncodableSpan["resource"], Map<string, EncodableSpan[]>>();
  for (const span of spans) {
    let byScope = byResource.get(span.resource);
    if (!byScope) byResource.set(span.resource, (byScope = new Map()));
    const { name, version = "", schemaUrl = "" } = span.instrumentationScope;
    const scopeKey = `${name}\n${version}\n${schemaUrl}`;
    const group = byScope.get(scopeKey);
    if (group) group.push(span);
    else byScope.set(scopeKey, [span]);
  }
  let out = '{"resourceSpans":[';
  let firstResource = true;
  for (const [resource, byScope] of byResource) {
    out += `${firstResource ? "" : ","}${resourceOpening(resource)}`;
    firstResource = false;
    let firstScope = true;
    for (const group of byScope.values()) {
      const scope = group[0]!.instrumentationScope;
      out += `${firstScope ? "" : ","}${scopeOpening(scope)}`;
      firstScope = false;
      for (let i = 0; i < group.length; i++) out += (i === 0 ? "" : ",") + encodeSpan(group[i]!);
      out += scopeClosing(scope);
    }
    out += resourceClosing(resource);
  }
  return `${out}]}`;
}

/**
 * The same request for spans of one resource and one scope, already encoded one by one
 * (encodeSpan): the batch processor encodes each span as it ends and sends them this way.
 */
export function traceRequestOpening(resource: EncodableSpan["resource"], scope: EncodableSpan["instrumentationScope"]): string {
  return `{"resourceSpans":[${resourceOpening(resource)}${scopeOpening(scope)}`;
}

export function traceRequestClosing(resource: EncodableSpan["resource"], scope: EncodableSpan["instrumentationScope"]): string {
  return `${scopeClosing(scope)}${resourceClosing(resource)}]}`;
}

function resourceOpening(resource: EncodableSpan["resource"]): string {
  const parts = ['{"resource":{"attributes":'];
  keyValues(parts, resource.attributes);
  parts.push('},"scopeSpans":[');
  return parts.join("");
}

function resourceClosing(resource: EncodableSpan["resource"]): string {
  return `]${resource.schemaUrl ? `,"schemaUrl":${jsonString(resource.schemaUrl)}` : ""}}`;
}

function scopeOpening({ name, version }: EncodableSpan["instrumentationScope"]): string {
  return `{"scope":{"name":${jsonString(name)}${version === undefined ? "" : `,"version":${jsonString(version)}`}},"spans":[`;
}

function scopeClosing({ schemaUrl }: EncodableSpan["instrumentationScope"]): string {
  return `]${schemaUrl ? `,"schemaUrl":${jsonString(schemaUrl)}` : ""}}`;
}

/** The parts of the span being encoded; reused, the encoding never runs twice at once. */
const spanParts: string[] = [];

/**
 * One span as an element of a ScopeSpans' `spans` list. Fields at their default (no events,
 * nothing dropped, status unset) are left out, as proto3's JSON mapping allows: a request
 * span is a fifth shorter, and it is encoded for every request.
 */
export function encodeSpan(span: EncodableSpan): string {
  const parts = spanParts;
  parts.length = 0;
  const context = span.spanContext();
  const parent = span.parentSpanContext;
  parts.push('{"traceId":"', context.traceId, '","spanId":"', context.spanId, '"');
  traceState(parts, context);
  if (parent) parts.push(',"parentSpanId":"', parent.spanId, '"');
  // The API's SpanKind starts at INTERNAL = 0; OTLP keeps 0 for UNSPECIFIED.
  parts.push(',"flags":', String(flags(context, parent?.isRemote)), ',"name":', jsonString(span.name), ',"kind":', String(span.kind + 1));
  parts.push(',"startTimeUnixNano":"', unixNano(span.startTime), '","endTimeUnixNano":"', unixNano(span.endTime), '","attributes":');
  keyValues(parts, span.attributes);
  count(parts, ',"droppedAttributesCount":', span.droppedAttributesCount);
  if (span.events.length > 0) {
    parts.push(',"events":');
    list(parts, span.events, encodeEvent);
  }
  count(parts, ',"droppedEventsCount":', span.droppedEventsCount);
  if (span.links.length > 0) {
    parts.push(',"links":');
    list(parts, span.links, encodeLink);
  }
  count(parts, ',"droppedLinksCount":', span.droppedLinksCount);
  // The API's SpanStatusCode (UNSET 0, OK 1, ERROR 2) is OTLP's StatusCode.
  const { status } = span;
  if (status.code !== 0 || status.message) {
    parts.push(',"status":{"code":', String(status.code));
    if (status.message) parts.push(',"message":', jsonString(status.message));
    parts.push("}");
  }
  parts.push("}");
  const text = parts.join("");
  parts.length = 0;
  return text;
}

/** A count field, left out when 0. */
function count(parts: string[], field: string, value: number): void {
  if (value !== 0) parts.push(field, String(value));
}

function encodeEvent(parts: string[], event: TimedEvent): void {
  parts.push('{"timeUnixNano":"', unixNano(event.time), '","name":', jsonString(event.name), ',"attributes":');
  keyValues(parts, event.attributes ?? {});
  count(parts, ',"droppedAttributesCount":', event.droppedAttributesCount ?? 0);
  parts.push("}");
}

function encodeLink(parts: string[], link: Link): void {
  parts.push('{"traceId":"', link.context.traceId, '","spanId":"', link.context.spanId, '"');
  traceState(parts, link.context);
  parts.push(',"attributes":');
  keyValues(parts, link.attributes ?? {});
  count(parts, ',"droppedAttributesCount":', link.droppedAttributesCount ?? 0);
  parts.push(',"flags":', String(flags(link.context, link.context.isRemote)), "}");
}

function list<T>(parts: string[], items: readonly T[], encode: (parts: string[], item: T) => void): void {
  parts.push("[");
  for (let i = 0; i < items.length; i++) {
    if (i > 0) parts.push(",");
    encode(parts, items[i]!);
  }
  parts.push("]");
}

function traceState(parts: string[], context: SpanContext): void {
  const serialized = context.traceState?.serialize();
  if (serialized) parts.push(',"traceState":', jsonString(serialized));
}

function flags(context: SpanContext, isRemote: boolean | undefined): number {
  return (context.traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (isRemote ? FLAGS_IS_REMOTE : 0);
}

const NINE_ZEROS = "000000000";

/** [seconds, nanoseconds] as a decimal string of nanoseconds (a uint64 does not fit a JSON number). */
export function unixNano([seconds, nanos]: HrTime): string {
  const fraction = String(nanos);
  return seconds === 0 ? fraction : `${seconds}${NINE_ZEROS.slice(fraction.length)}${fraction}`;
}

function keyValues(parts: string[], attributes: Attributes): void {
  parts.push("[");
  let first = true;
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined) continue;
    parts.push(first ? '{"key":' : ',{"key":', jsonString(key), ',"value":');
    first = false;
    anyValue(parts, value);
    parts.push("}");
  }
  parts.push("]");
}

function anyValue(parts: string[], value: AttributeValue | null | undefined): void {
  switch (typeof value) {
    case "string":
      parts.push('{"stringValue":', jsonString(value), "}");
      return;
    case "boolean":
      parts.push(value ? '{"boolValue":true}' : '{"boolValue":false}');
      return;
    case "number":
      // int64 is a string in proto3 JSON; non-finite doubles are the strings "NaN", "Infinity", "-Infinity".
      if (Number.isSafeInteger(value)) parts.push('{"intValue":"', String(value), '"}');
      else if (Number.isFinite(value)) parts.push('{"doubleValue":', String(value), "}");
      else parts.push('{"doubleValue":"', String(value), '"}');
      return;
    default:
      if (Array.isArray(value)) {
        parts.push('{"arrayValue":{"values":');
        list(parts, value, anyValue);
        parts.push("}}");
      } else parts.push("{}");
  }
}
