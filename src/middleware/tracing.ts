/**
 * @module tracing: one server span per request, from arrival to the last byte of the response,
 * continuing the client's W3C trace context; the proxy adds the client span under it.
 * Registered only when tracing is on, so a pipeline without it does no tracing work at all
 * (and loaded only then, see telemetry/tracing.ts).
 */

import { type Attributes, ROOT_CONTEXT, SpanKind, type TextMapGetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
  HTTP_REQUEST_METHOD_VALUE_OTHER,
} from "@opentelemetry/semantic-conventions";
import type { MiddlewareHandler } from "hono";
import type { EndListener, ExchangeTrace, UpstreamTrace } from "../exchange.ts";
import { removeField, setField } from "../forwarded-headers.ts";
import type { ProxyEnv } from "../proxy.ts";
import { requestPath } from "../request-target.ts";
import { epochMsAt, type RequestSpan, type RequestTracer } from "../telemetry/request-spans.ts";
import type { HeaderFields } from "../upstream/http1-client.ts";
import { reportedStatus } from "./access-log.ts";

/** Reads the client's traceparent and tracestate. */
const propagator = new W3CTraceContextPropagator();

const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

/**
 * Passes a span's trace context on to the app (W3C Trace Context, as the propagator would).
 * A client's tracestate goes on only as the span carries it: one sent with an invalid
 * traceparent belongs to a trace that was restarted, not to this one.
 */
function injectTraceContext(span: RequestSpan, fields: HeaderFields): void {
  setField(fields, "traceparent", span.traceparent);
  const traceState = span.context.traceState?.serialize();
  if (traceState) setField(fields, "tracestate", traceState);
  else removeField(fields, "tracestate");
}

/**
 * The methods the HTTP semantic conventions know. Any other (Deno takes any token as a
 * method) is "_OTHER" and its span is named "HTTP": span names made of client input would
 * have no bound on their number.
 */
const KNOWN_METHODS: ReadonlySet<string> = new Set(["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]);

function spanName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : "HTTP";
}

/** Sets http.request.method, and http.request.method_original for a method not known. */
function addMethod(attributes: Attributes, method: string): void {
  if (KNOWN_METHODS.has(method)) attributes[ATTR_HTTP_REQUEST_METHOD] = method;
  else {
    attributes[ATTR_HTTP_REQUEST_METHOD] = HTTP_REQUEST_METHOD_VALUE_OTHER;
    attributes[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = method;
  }
}

/** A Host header's name and port ("name", "name:port", "[v6]:port"); undefined when not one. */
function parseHost(host: string): { address: string; port: number | undefined } | undefined {
  const bracket = host.startsWith("[") ? host.indexOf("]") : -1;
  const colon = host.indexOf(":", bracket + 1);
  if (colon === -1) return { address: host, port: undefined };
  const port = host.slice(colon + 1);
  if (!/^\d{1,5}$/.test(port)) return undefined;
  return { address: host.slice(0, colon), port: Number(port) };
}

/** An upstream authority's host (without IPv6 brackets) and port: "host:port", "[v6]:port". */
function parseAuthority(authority: string): { address: string; port: number } {
  const colon = authority.lastIndexOf(":");
  const host = authority.slice(0, colon);
  return { address: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(authority.slice(colon + 1)) };
}

/**
 * `parse` remembering its last answer: nearly every request names the same Host, and every
 * upstream call of a pipeline the same child, so each is parsed about once.
 */
function lastParsed<T>(parse: (text: string) => T): (text: string) => T {
  let lastText: string | undefined;
  let lastResult: T;
  return (text) => {
    if (text !== lastText) {
      lastResult = parse(text);
      lastText = text;
    }
    return lastResult;
  };
}

const hostParts = lastParsed(parseHost);
const authorityParts = lastParsed(parseAuthority);

/** Sets server.address and server.port from a Host header. */
function addHostAttributes(attributes: Attributes, host: string | null): void {
  const parts = host ? hostParts(host) : undefined;
  if (parts === undefined) return;
  attributes[ATTR_SERVER_ADDRESS] = parts.address;
  if (parts.port !== undefined) attributes[ATTR_SERVER_PORT] = parts.port;
}

export function tracing(tracer: RequestTracer): MiddlewareHandler<ProxyEnv> {
  return function tracing(c, next) {
    const { exchange } = c.env;
    const request = exchange.request;
    const parent = propagator.extract(ROOT_CONTEXT, request.headers, headerGetter);
    // Span names carry the method only: no path, so no query string or credential leaks.
    const span = tracer.startServerSpan(spanName(request.method), parent, epochMsAt(exchange.startedAt));
    // The samplers sluice offers decide on the trace id alone: attributes are built only
    // for spans that are recorded.
    if (span.recording) {
      const attributes = span.attributes;
      addMethod(attributes, request.method);
      attributes[ATTR_URL_PATH] = requestPath(request.url);
      attributes[ATTR_URL_SCHEME] = "http";
      attributes[ATTR_CLIENT_ADDRESS] = exchange.clientAddress;
      addHostAttributes(attributes, request.headers.get("host"));
      const userAgent = request.headers.get("user-agent");
      if (userAgent !== null) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
    }
    exchange.trace = new ServerTrace(span);
    return next();
  };
}

/** An exchange's server span, and how the upstream call joins its trace. */
class ServerTrace implements ExchangeTrace {
  constructor(readonly span: RequestSpan) {}

  get recording(): boolean {
    return this.span.recording;
  }

  startUpstream(method: string, url: string, fields: HeaderFields): UpstreamTrace | undefined {
    if (!this.span.recording) {
      // Not sampled: the child still gets the trace context (sampled flag off), no span is made.
      injectTraceContext(this.span, fields);
      return undefined;
    }
    // url is the child's: http://host:port/path?query. The query stays out (no credentials in spans).
    const pathStart = url.indexOf("/", 7);
    const queryStart = url.indexOf("?", pathStart);
    const { address, port } = authorityParts(url.slice(7, pathStart));
    const attributes: Attributes = {};
    addMethod(attributes, method);
    attributes[ATTR_SERVER_ADDRESS] = address;
    attributes[ATTR_SERVER_PORT] = port;
    attributes[ATTR_URL_FULL] = queryStart < 0 ? url : url.slice(0, queryStart);
    const span = this.span.child(spanName(method), SpanKind.CLIENT, attributes);
    injectTraceContext(span, fields);
    return new ClientSpan(span);
  }
}

class ClientSpan implements UpstreamTrace {
  constructor(readonly span: RequestSpan) {}

  /**
   * The app's status. A client span's status is an error from 400 up (a server span's from
   * 500), with the status as error.type and no message: the status code says it all.
   */
  answered(status: number): void {
    this.span.attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
    if (status >= 400) {
      this.span.attributes[ATTR_ERROR_TYPE] = String(status);
      this.span.setError();
    }
  }

  failed(errorType: string): void {
    this.span.attributes[ATTR_ERROR_TYPE] = errorType;
    this.span.setError(errorType);
  }

  end(): void {
    this.span.end();
  }
}

/**
 * Ends the server span when the exchange ends: after the last byte, or the cut. A response
 * cut midway is an error of that outcome ("aborted", "error"); a whole one is an error from
 * status 500 up, its error.type the status (HTTP semantic conventions).
 */
export function endServerSpan(): EndListener {
  return function endServerSpan(exchange) {
    const span = (exchange.trace as ServerTrace | undefined)?.span;
    if (!span?.recording) return;
    const status = reportedStatus(exchange);
    const attributes = span.attributes;
    attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
    const outcome = exchange.outcome;
    if (outcome === "aborted" || outcome === "error") {
      attributes[ATTR_ERROR_TYPE] = outcome;
      span.setError(outcome);
    } else if (status >= 500) {
      attributes[ATTR_ERROR_TYPE] = String(status);
      span.setError();
    }
    span.end();
  };
}
