/** @module OtlpExporter against a real OTLP/HTTP receiver: the JSON encoding, counts, timeouts, shutdown. */

import { afterEach, expect, test } from "bun:test";
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode, TraceState } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { AlwaysOnSampler } from "@opentelemetry/sdk-trace-base";
import { OtlpExporter } from "../../src/telemetry/otlp-exporter.ts";
import { traceRequestClosing, traceRequestOpening, unixNanoText, writeSpan } from "../../src/telemetry/otlp-json.ts";
import { epochMs, type RequestSpan, RequestTracer } from "../../src/telemetry/request-spans.ts";
import { type Receiver, startReceiver } from "../fixtures/otlp-receiver.ts";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function receiver(): Receiver {
  const started = startReceiver();
  cleanups.push(() => started.stop());
  return started;
}

function exporter(url: string, options: { timeoutMs?: number; headers?: Record<string, string> } = {}): OtlpExporter {
  const made = new OtlpExporter({ url, ...options });
  cleanups.push(() => made.shutdown());
  return made;
}

/** Spans made by sluice's tracer, in the order they ended. */
function record(run: (tracer: RequestTracer) => void): RequestSpan[] {
  const ended: RequestSpan[] = [];
  run(new RequestTracer({ onEnd: (span) => ended.push(span) }, new AlwaysOnSampler()));
  return ended;
}

function twoSpans(): RequestSpan[] {
  return record((tracer) => {
    tracer.startServerSpan("a", ROOT_CONTEXT, epochMs()).end();
    tracer.startServerSpan("b", ROOT_CONTEXT, epochMs()).end();
  });
}

const RESOURCE = resourceFromAttributes({ "service.name": "exporter-test", "host.cores": 8 });
const SCOPE = { name: "exporter-test", version: "1.2.3" };

/** The spans as one request body, as the batch processor writes it. */
function body(spans: RequestSpan[]): Uint8Array<ArrayBuffer> {
  const parts = [traceRequestOpening(RESOURCE, SCOPE)];
  spans.forEach((span, i) => writeSpan(parts, span, i === 0 ? "" : ","));
  parts.push(traceRequestClosing(RESOURCE, SCOPE));
  return new TextEncoder().encode(parts.join(""));
}

function exportNow(target: OtlpExporter, spans: RequestSpan[]): Promise<ExportResult> {
  return target.exportEncoded(body(spans), spans.length);
}

test("sends the OTLP JSON encoding: ids, trace state, flags, times, kind, attributes of every type, status, resource, scope", async () => {
  const remoteParent = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState("vendor=abc"),
  };
  const attributes = {
    "http.request.method": "GET",
    "http.response.status_code": 200,
    ratio: 0.5,
    "not.a.number": NaN,
    huge: 2 ** 60,
    cached: false,
    tags: ["a", "b"],
    codes: [1, 2],
    sparse: ["x", null, "z"],
    escaped: 'say "hi"\\\n\u0001',
    "non.ascii": "café ✓ 😀",
    negative: -3,
  };
  const spans = record((tracer) => {
    const server = tracer.startServerSpan("GET /items/{id}", trace.setSpanContext(ROOT_CONTEXT, remoteParent), epochMs());
    Object.assign(server.attributes, attributes);
    const client = server.child("GET \"quoted\"", SpanKind.CLIENT, {});
    client.setError("connection refused");
    client.end();
    server.end();
  });
  const { tracesUrl, spans: received, requests, errors } = receiver();
  const result = await exportNow(exporter(tracesUrl, { headers: { authorization: "Bearer t0ken" } }), spans);

  expect(result).toEqual({ code: ExportResultCode.SUCCESS });
  expect(errors).toEqual([]);
  expect(requests).toHaveLength(1);
  expect(requests[0]).toMatchObject({ method: "POST", path: "/v1/traces", spanCount: 2, status: 200 });
  expect(requests[0]!.headers).toMatchObject({ "content-type": "application/json", authorization: "Bearer t0ken" });

  const [client, server] = received;
  const serverSpan = spans[1]!;
  expect(server).toEqual({
    traceId: remoteParent.traceId,
    spanId: serverSpan.context.spanId,
    parentSpanId: remoteParent.spanId,
    traceState: "vendor=abc",
    flags: 0x301, // sampled, parent remoteness known, parent remote
    name: "GET /items/{id}",
    kind: 2, // SPAN_KIND_SERVER
    startTimeUnixNano: BigInt(unixNanoText(serverSpan.startMs)),
    endTimeUnixNano: BigInt(unixNanoText(serverSpan.endMs)),
    attributes,
    events: [],
    links: [],
    status: { code: 0, message: undefined },
    resource: { "service.name": "exporter-test", "host.cores": 8 },
    scope: { name: "exporter-test", version: "1.2.3" },
  });
  expect(client).toMatchObject({
    traceId: remoteParent.traceId,
    parentSpanId: server!.spanId,
    traceState: "vendor=abc",
    flags: 0x101, // a local parent
    name: 'GET "quoted"',
    kind: 3, // SPAN_KIND_CLIENT
    status: { code: 2, message: "connection refused" },
  });
  expect(client!.endTimeUnixNano).toBeGreaterThanOrEqual(client!.startTimeUnixNano);
  expect(server!.endTimeUnixNano).toBeGreaterThanOrEqual(client!.endTimeUnixNano);
});

test("unixNanoText writes epoch milliseconds as a decimal string of nanoseconds", () => {
  expect(unixNanoText(1_700_000_000_123.5)).toBe("1700000000123500000");
  expect(unixNanoText(1_700_000_000_123)).toBe("1700000000123000000");
  expect(unixNanoText(1_700_000_000_000.25)).toBe("1700000000000250000");
  expect(unixNanoText(12.000_001)).toBe("12000001");
  expect(unixNanoText(1.999_999_9)).toBe("2000000"); // the fraction rounds up into the next millisecond
  expect(unixNanoText(0.5)).toBe("500000");
});

test("counts spans exported, and dropped on an error answer, a partial success, a refused connection or a timeout", async () => {
  const target = receiver();
  const sender = exporter(target.tracesUrl, { timeoutMs: 300 });

  expect((await exportNow(sender, twoSpans())).code).toBe(ExportResultCode.SUCCESS);
  expect(sender.counts).toEqual({ exported: 2, dropped: 0 });

  target.status = 503;
  const failed = await exportNow(sender, twoSpans());
  expect(failed.code).toBe(ExportResultCode.FAILED);
  expect(failed.error?.message).toContain("answered 503");
  expect(sender.counts).toEqual({ exported: 2, dropped: 2 });

  target.status = 200;
  target.rejectSpans = 1;
  expect((await exportNow(sender, twoSpans())).code).toBe(ExportResultCode.SUCCESS);
  expect(sender.counts).toEqual({ exported: 3, dropped: 3 });

  target.rejectSpans = 0;
  target.delayMs = 2000;
  const started = performance.now();
  const timedOut = await exportNow(sender, twoSpans());
  expect(performance.now() - started).toBeLessThan(1500);
  expect(timedOut.error?.message).toContain("timed out after 300ms");
  expect(sender.counts).toEqual({ exported: 3, dropped: 5 });
  expect(sender.pending).toBe(0);

  const closed = startReceiver();
  closed.stop();
  const refused = exporter(closed.tracesUrl);
  expect((await exportNow(refused, twoSpans())).code).toBe(ExportResultCode.FAILED);
  expect(refused.counts).toEqual({ exported: 0, dropped: 2 });
});

test("a 429 or 503 with Retry-After holds exports back until then, dropping their spans without a request", async () => {
  const target = receiver();
  const sender = exporter(target.tracesUrl);
  target.status = 429;
  target.retryAfter = "2";
  expect((await exportNow(sender, twoSpans())).error?.message).toContain("answered 429");
  target.status = 200;
  const held = await exportNow(sender, twoSpans());
  expect(held.code).toBe(ExportResultCode.FAILED);
  expect(held.error?.message).toContain("asked to wait until");
  expect(target.requests).toHaveLength(1); // the held export sent nothing
  expect(sender.counts).toEqual({ exported: 0, dropped: 4 });
  // Once the time has passed, exports go again (polled: a deadline, not a sleep).
  const deadline = Date.now() + 10_000;
  while ((await exportNow(sender, twoSpans())).code !== ExportResultCode.SUCCESS) {
    expect(Date.now()).toBeLessThan(deadline);
    await Bun.sleep(100);
  }
  expect(target.requests).toHaveLength(2);

  // An HTTP-date works too; a 500's Retry-After, or a malformed one, holds nothing back.
  target.status = 503;
  target.retryAfter = new Date(Date.now() + 60_000).toUTCString();
  await exportNow(sender, twoSpans());
  expect((await exportNow(sender, twoSpans())).error?.message).toContain("asked to wait until");
  const other = exporter(target.tracesUrl);
  for (const [status, retryAfter] of [[500, "60"], [429, "soon"], [503, "-5"]] as const) {
    target.status = status;
    target.retryAfter = retryAfter;
    await exportNow(other, twoSpans());
    target.status = 200;
    expect((await exportNow(other, twoSpans())).code).toBe(ExportResultCode.SUCCESS);
  }
});

test("shutdown waits for the export in flight, then refuses new ones; nothing stays pending", async () => {
  const target = receiver();
  target.delayMs = 200;
  const liveBefore = OtlpExporter.live;
  const sender = new OtlpExporter({ url: target.tracesUrl });
  expect(OtlpExporter.live).toBe(liveBefore + 1);

  const inFlight = exportNow(sender, twoSpans());
  expect(sender.pending).toBe(1);
  await sender.shutdown();
  expect(sender.pending).toBe(0);
  expect(await inFlight).toEqual({ code: ExportResultCode.SUCCESS });
  expect(target.spans).toHaveLength(2);
  expect(OtlpExporter.live).toBe(liveBefore);

  const late = await exportNow(sender, twoSpans());
  expect(late.code).toBe(ExportResultCode.FAILED);
  expect(sender.counts).toEqual({ exported: 2, dropped: 2 });
  expect(target.requests).toHaveLength(1);
  await sender.shutdown(); // a second shutdown is harmless
  expect(OtlpExporter.live).toBe(liveBefore);
});

test("a URL that is not http(s) is refused when the exporter is made", () => {
  expect(() => new OtlpExporter({ url: "collector:4318" })).toThrow('Cannot export spans to "collector:4318": expected an http:// or https:// URL');
  expect(() => new OtlpExporter({ url: "not a url" })).toThrow(TypeError);
});
