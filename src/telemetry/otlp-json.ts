/**
 * @module The OTLP JSON encoding of an ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) for sluice's spans: hex
 * ids, unix-nano times as strings, enums as numbers, attributes as key/value lists. Written
 * out as text directly, for every span exported: building objects for JSON.stringify cost
 * more than the spans themselves. A span's text is gathered as parts and joined once, and
 * the parts are, where they can be, strings that already exist (constants, ids, attribute
 * values): under load each string made per span costs several times what it costs in a
 * loop (docs/runtime-notes.md).
 */

import type { Attributes, AttributeValue, SpanContext, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import type { InstrumentationScope } from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import { isPlainJsonText, jsonString } from "../json-string.ts";

/** What the encoding reads of a span (sluice's request spans, request-spans.ts). */
export interface EncodableSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly context: SpanContext;
  readonly parentSpanContext?: SpanContext | undefined;
  /** Milliseconds since the epoch, with their fraction. */
  readonly startMs: number;
  readonly endMs: number;
  /** The API's SpanStatusCode (UNSET 0, OK 1, ERROR 2), which is OTLP's StatusCode. */
  readonly statusCode: SpanStatusCode;
  readonly statusMessage: string | undefined;
  readonly attributes: Attributes;
}

// Span flags (trace.proto): the W3C trace flags in the low byte, then whether the parent's
// remoteness is known (bit 8) and whether it is remote (bit 9).
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

/**
 * The opening of a request for spans of one resource and one scope, up to its `spans` list;
 * the spans follow, encoded one by one (encodeSpan), then traceRequestClosing.
 */
export function traceRequestOpening(resource: Resource, scope: InstrumentationScope): string {
  const parts = ['{"resourceSpans":[{"resource":{"attributes":'];
  keyValues(parts, resource.attributes);
  const { name, version } = scope;
  parts.push('},"scopeSpans":[{"scope":{"name":', jsonString(name));
  if (version !== undefined) parts.push(',"version":', jsonString(version));
  parts.push('},"spans":[');
  return parts.join("");
}

export function traceRequestClosing(resource: Resource, scope: InstrumentationScope): string {
  const scopeSchema = scope.schemaUrl ? `,"schemaUrl":${jsonString(scope.schemaUrl)}` : "";
  const resourceSchema = resource.schemaUrl ? `,"schemaUrl":${jsonString(resource.schemaUrl)}` : "";
  return `]${scopeSchema}}]${resourceSchema}}]}`;
}

/** OTLP's SpanKind: the API's starts at INTERNAL = 0, OTLP keeps 0 for UNSPECIFIED. */
const KIND_TEXT = ["1", "2", "3", "4", "5"];

/**
 * Adds one span's text to `parts`, as an element of a ScopeSpans' `spans` list after
 * `separator` ("," between spans). Fields at their default (nothing dropped, status unset)
 * are left out, as proto3's JSON mapping allows: a request span is a fifth shorter.
 */
export function writeSpan(parts: string[], span: EncodableSpan, separator: string): void {
  const context = span.context;
  const parent = span.parentSpanContext;
  parts.push(separator, '{"traceId":"', context.traceId, '","spanId":"', context.spanId, '"');
  const traceState = context.traceState?.serialize();
  if (traceState) parts.push(',"traceState":', jsonString(traceState));
  if (parent) parts.push(',"parentSpanId":"', parent.spanId, '"');
  parts.push(',"flags":', flagsText(context, parent?.isRemote), ',"name":');
  pushString(parts, span.name);
  parts.push(',"kind":', KIND_TEXT[span.kind]!, ',"startTimeUnixNano":"');
  pushUnixNano(parts, span.startMs);
  parts.push('","endTimeUnixNano":"');
  pushUnixNano(parts, span.endMs);
  parts.push('","attributes":');
  keyValues(parts, span.attributes);
  if (span.statusCode !== 0 || span.statusMessage) {
    parts.push(',"status":{"code":', String(span.statusCode));
    if (span.statusMessage) parts.push(',"message":', jsonString(span.statusMessage));
    parts.push("}");
  }
  parts.push("}");
}

/** A string as JSON writes it, quoted by the parts around it when it needs no escapes. */
function pushString(parts: string[], text: string): void {
  if (isPlainJsonText(text)) parts.push('"', text, '"');
  else parts.push(JSON.stringify(text));
}

/** The flags' decimal text, made once per value (a handful occur). */
const flagTexts: string[] = [];

function flagsText(context: SpanContext, isRemote: boolean | undefined): string {
  const flags = (context.traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (isRemote ? FLAGS_IS_REMOTE : 0);
  return (flagTexts[flags] ??= String(flags));
}

/** Zeros that pad a number of up to six digits to six, by its length. */
const SIX_DIGIT_PADDING = ["000000", "00000", "0000", "000", "00", "0", ""];

/** The text of the millions of milliseconds last written: it changes every 1000 seconds. */
let lastMillions = -1;
let lastMillionsText = "";

/**
 * Epoch milliseconds as a decimal string of nanoseconds (a uint64 does not fit a JSON
 * number). A double near today's epoch milliseconds keeps about a quarter of a microsecond.
 * Written from numbers below a million: turning a number beyond 2^31 into text takes the
 * runtime's floating-point path, which under load cost about half a microsecond a call.
 */
function pushUnixNano(parts: string[], ms: number): void {
  let whole = Math.floor(ms);
  let nanos = Math.round((ms - whole) * 1e6);
  if (nanos === 1e6) {
    whole++;
    nanos = 0;
  }
  const millions = Math.floor(whole / 1e6);
  const rest = whole - millions * 1e6;
  if (millions === 0) {
    if (rest === 0) {
      parts.push(String(nanos));
      return;
    }
    parts.push(String(rest));
  } else {
    if (millions !== lastMillions) {
      lastMillions = millions;
      lastMillionsText = String(millions);
    }
    parts.push(lastMillionsText);
    pushSixDigits(parts, rest);
  }
  pushSixDigits(parts, nanos);
}

function pushSixDigits(parts: string[], n: number): void {
  const text = String(n);
  parts.push(SIX_DIGIT_PADDING[text.length]!, text);
}

/** `ms` as unixNano text, as encodeSpan writes it. */
export function unixNanoText(ms: number): string {
  const parts: string[] = [];
  pushUnixNano(parts, ms);
  return parts.join("");
}

/** Each attribute key's `{"key":...,"value":` text; sluice's keys are a few constants. */
const keyTexts = new Map<string, string>();
const KEY_TEXTS_MAX = 256;

function keyText(key: string): string {
  let text = keyTexts.get(key);
  if (text === undefined) {
    text = `{"key":${jsonString(key)},"value":`;
    if (keyTexts.size < KEY_TEXTS_MAX) keyTexts.set(key, text);
  }
  return text;
}

function keyValues(parts: string[], attributes: Attributes): void {
  parts.push("[");
  let first = true;
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined) continue;
    if (!first) parts.push(",");
    first = false;
    parts.push(keyText(key));
    anyValue(parts, value);
    parts.push("}");
  }
  parts.push("]");
}

function anyValue(parts: string[], value: AttributeValue | null | undefined): void {
  switch (typeof value) {
    case "string":
      if (isPlainJsonText(value)) parts.push('{"stringValue":"', value, '"}');
      else parts.push('{"stringValue":', JSON.stringify(value), "}");
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
        parts.push('{"arrayValue":{"values":[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) parts.push(",");
          anyValue(parts, value[i]);
        }
        parts.push("]}}");
      } else parts.push("{}");
  }
}
