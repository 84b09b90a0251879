/**
 * @module The OTLP JSON encoding of an ExportTraceServiceRequest
 * (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) for sluice's spans: hex
 * ids, unix-nano times as strings, enums as numbers, attributes as key/value lists. Written
 * out as text directly, for every span exported: building objects for JSON.stringify cost
 * more than the spans themselves. A span's text is gathered as parts (writeSpan), which the
 * batch processor joins for many spans at once, and the parts are, where they can be,
 * strings that already exist (constants, ids, attribute values): under load each string
 * made per span costs several times what it costs in a loop (docs/runtime-notes.md).
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
 * the spans follow (writeSpan), then traceRequestClosing.
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

/**
 * Adds one span's text to `parts`, as an element of a ScopeSpans' `spans` list after
 * `separator` ("," between spans). Fields at their default (nothing dropped, status unset)
 * are left out, as proto3's JSON mapping allows: a request span is a fifth shorter. The
 * constant text between values is pushed in as few parts as it can be: joining the parts
 * costs about as much per part as per character written.
 */
export function writeSpan(parts: string[], span: EncodableSpan, separator: string): void {
  const context = span.context;
  const parent = span.parentSpanContext;
  parts.push(separator === "" ? '{"traceId":"' : ',{"traceId":"', context.traceId, '","spanId":"', context.spanId);
  if (parent) parts.push('","parentSpanId":"', parent.spanId);
  parts.push(flagsText(context, parent?.isRemote));
  const name = span.name;
  // The API's SpanKind starts at INTERNAL = 0; OTLP keeps 0 for UNSPECIFIED.
  if (isPlainJsonText(name)) parts.push('"', name, KIND_AFTER_QUOTE[span.kind]!);
  else parts.push(JSON.stringify(name), KIND_AFTER_JSON[span.kind]!);
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
  const traceState = context.traceState?.serialize();
  if (traceState) parts.push(',"traceState":', jsonString(traceState));
  parts.push("}");
}

/** The kind, and the start time's opening, after the name's closing quote or after its JSON. */
const KIND_AFTER_JSON = [1, 2, 3, 4, 5].map((kind) => `,"kind":${kind},"startTimeUnixNano":"`);
const KIND_AFTER_QUOTE = KIND_AFTER_JSON.map((text) => `"${text}`);

/** The flags, after the span id's closing quote, up to the name: made once per value (a handful occur). */
const flagTexts: string[] = [];

function flagsText(context: SpanContext, isRemote: boolean | undefined): string {
  const flags = (context.traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (isRemote ? FLAGS_IS_REMOTE : 0);
  return (flagTexts[flags] ??= `","flags":${flags},"name":`);
}

/** Zeros that pad a number of up to six digits to six, by its length. */
const SIX_DIGIT_PADDING = ["000000", "00000", "0000", "000", "00", "0", ""];

/** The text of the whole milliseconds last written: several spans end within one. */
let lastWholeMs = -1;
let lastWholeMsText = "";

/**
 * Epoch milliseconds as a decimal string of nanoseconds (a uint64 does not fit a JSON
 * number). A double near today's epoch milliseconds keeps about a quarter of a microsecond.
 */
function pushUnixNano(parts: string[], ms: number): void {
  let whole = Math.floor(ms);
  let nanos = Math.round((ms - whole) * 1e6);
  if (nanos === 1e6) {
    whole++;
    nanos = 0;
  }
  const fraction = String(nanos);
  if (whole === 0) {
    parts.push(fraction);
    return;
  }
  if (whole !== lastWholeMs) {
    lastWholeMs = whole;
    lastWholeMsText = wholeMsText(whole);
  }
  parts.push(lastWholeMsText, SIX_DIGIT_PADDING[fraction.length]!, fraction);
}

/**
 * Whole milliseconds as text, from numbers below a million: turning a number beyond 2^31
 * into text takes the runtime's floating-point path, which under load cost about 0.3 us a
 * call (docs/runtime-notes.md).
 */
function wholeMsText(whole: number): string {
  const millions = Math.floor(whole / 1e6);
  const rest = String(whole - millions * 1e6);
  return millions === 0 ? rest : `${millions}${SIX_DIGIT_PADDING[rest.length]}${rest}`;
}

/** `ms` as unixNano text, as writeSpan writes it. */
export function unixNanoText(ms: number): string {
  const parts: string[] = [];
  pushUnixNano(parts, ms);
  return parts.join("");
}

/**
 * An attribute key's texts up to its value, as the first of the list or after another, and
 * the same up to a plain string value's first character. sluice's keys are a few constants.
 */
interface KeyTexts {
  readonly first: string;
  readonly next: string;
  readonly firstString: string;
  readonly nextString: string;
}

const keyTextsByKey = new Map<string, KeyTexts>();
const KEY_TEXTS_MAX = 256;

function keyTexts(key: string): KeyTexts {
  let texts = keyTextsByKey.get(key);
  if (texts === undefined) {
    const entry = `{"key":${jsonString(key)},"value":`;
    const string = `${entry}{"stringValue":"`;
    texts = { first: `[${entry}`, next: `,${entry}`, firstString: `[${string}`, nextString: `,${string}` };
    if (keyTextsByKey.size < KEY_TEXTS_MAX) keyTextsByKey.set(key, texts);
  }
  return texts;
}

function keyValues(parts: string[], attributes: Attributes): void {
  let first = true;
  for (const key in attributes) {
    const value = attributes[key];
    if (value === undefined) continue;
    const texts = keyTexts(key);
    if (typeof value === "string" && isPlainJsonText(value)) {
      parts.push(first ? texts.firstString : texts.nextString, value, '"}}');
    } else {
      parts.push(first ? texts.first : texts.next);
      anyValue(parts, value);
      parts.push("}");
    }
    first = false;
  }
  parts.push(first ? "[]" : "]");
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
