/**
 * @module The OTLP JSON encoding of an ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): hex ids, unix-nano
 * times as strings, enums as numbers, attributes as key/value lists. Written out as text
 * directly: building the objects for JSON.stringify cost more than the spans themselves
 * (about 3 us a span, measured in process), and this runs for every span exported.
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
export function traceRequestOpening(resource: ReadableSpan["resource"], scope: ReadableSpan["instrumentationScope"]): string {
  return `{"resourceSpans":[${resourceOpening(resource)}${scopeOpening(scope)}`;
}

export function traceRequestClosing(resource: ReadableSpan["resource"], scope: ReadableSpan["instrumentationScope"]): string {
  return `${scopeClosing(scope)}${resourceClosing(resource)}]}`;
}

function resourceOpening(resource: ReadableSpan["resource"]): string {
  return `{"resource":{"attributes":${keyValues(resource.attributes)},"droppedAttributesCount":0},"scopeSpans":[`;
}

function resourceClosing(resource: ReadableSpan["resource"]): string {
  return `]${resource.schemaUrl ? `,"schemaUrl":${jsonString(resource.schemaUrl)}` : ""}}`;
}

function scopeOpening({ name, version }: ReadableSpan["instrumentationScope"]): string {
  return `{"scope":{"name":${jsonString(name)}${version === undefined ? "" : `,"version":${jsonString(version)}`}},"spans":[`;
}

function scopeClosing({ schemaUrl }: ReadableSpan["instrumentationScope"]): string {
  return `]${schemaUrl ? `,"schemaUrl":${jsonString(schemaUrl)}` : ""}}`;
}

/**
 * One span as an element of a ScopeSpans' `spans` list. Fields at their default (no events,
 * nothing dropped, status unset) are left out, as proto3's JSON mapping allows: a request
 * span is a fifth shorter, and it is encoded for every request.
 */
export function encodeSpan(span: EncodableSpan): string {
  const context = span.spanContext();
  const parent = span.parentSpanContext;
  const { status } = span;
  return `{"traceId":"${context.traceId}","spanId":"${context.spanId}"${traceState(context)}` +
    (parent ? `,"parentSpanId":"${parent.spanId}"` : "") +
    `,"flags":${flags(context, parent?.isRemote)},"name":${jsonString(span.name)}` +
    // The API's SpanKind starts at INTERNAL = 0; OTLP keeps 0 for UNSPECIFIED.
    `,"kind":${span.kind + 1},"startTimeUnixNano":"${unixNano(span.startTime)}","endTimeUnixNano":"${unixNano(span.endTime)}"` +
    `,"attributes":${keyValues(span.attributes)}${count("droppedAttributesCount", span.droppedAttributesCount)}` +
    (span.events.length === 0 ? "" : `,"events":${list(span.events, encodeEvent)}`) + count("droppedEventsCount", span.droppedEventsCount) +
    (span.links.length === 0 ? "" : `,"links":${list(span.links, encodeLink)}`) + count("droppedLinksCount", span.droppedLinksCount) +
    // The API's SpanStatusCode (UNSET 0, OK 1, ERROR 2) is OTLP's StatusCode.
    (status.code === 0 && !status.message
      ? "}"
      : `,"status":{"code":${status.code}${status.message ? `,"message":${jsonString(status.message)}` : ""}}}`);
}

/** A count field, left out when 0. */
function count(name: string, value: number): string {
  return value === 0 ? "" : `,"${name}":${value}`;
}

function encodeEvent(event: TimedEvent): string {
  return `{"timeUnixNano":"${unixNano(event.time)}","name":${jsonString(event.name)},"attributes":${keyValues(event.attributes ?? {})}` +
    `,"droppedAttributesCount":${event.droppedAttributesCount ?? 0}}`;
}

function encodeLink(link: Link): string {
  return `{"traceId":"${link.context.traceId}","spanId":"${link.context.spanId}"${traceState(link.context)}` +
    `,"attributes":${keyValues(link.attributes ?? {})},"droppedAttributesCount":${link.droppedAttributesCount ?? 0}` +
    `,"flags":${flags(link.context, link.context.isRemote)}}`;
}

function list<T>(items: readonly T[], encode: (item: T) => string): string {
  if (items.length === 0) return "[]";
  let out = "[";
  for (let i = 0; i < items.length; i++) out += (i === 0 ? "" : ",") + encode(items[i]!);
  return `${out}]`;
}

function traceState(context: SpanContext): string {
  const serialized = context.traceState?.serialize();
  return serialized ? `,"traceState":${jsonString(serialized)}` : "";
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

function keyValues(attributes: Attributes): string {
  let out = "[";
  for (const key in attributes) {
    const value = attributes[key];
    if (value !== undefined) out += `${out.length === 1 ? "" : ","}{"key":${jsonString(key)},"value":${anyValue(value)}}`;
  }
  return `${out}]`;
}

function anyValue(value: AttributeValue | null | undefined): string {
  switch (typeof value) {
    case "string":
      return `{"stringValue":${jsonString(value)}}`;
    case "boolean":
      return `{"boolValue":${value}}`;
    case "number":
      // int64 is a string in proto3 JSON; non-finite doubles are the strings "NaN", "Infinity", "-Infinity".
      if (Number.isSafeInteger(value)) return `{"intValue":"${value}"}`;
      return Number.isFinite(value) ? `{"doubleValue":${value}}` : `{"doubleValue":"${value}"}`;
    default:
      if (Array.isArray(value)) return `{"arrayValue":{"values":${list(value, anyValue)}}}`;
      return "{}";
  }
}
