/** @module OtlpExporter against a real OTLP/HTTP receiver: the JSON encoding, counts, timeouts, shutdown. */

import { afterEach, expect, test } from "bun:test";
import { type Link, SpanKind, SpanStatusCode, type Tracer, TraceFlags, trace, ROOT_CONTEXT } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode, TraceState } from "@opentelemetry/core";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { OtlpExporter } from "../../src/telemetry/otlp-exporter.ts";
import { unixNano } from "../../src/telemetry/otlp-json.ts";
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

/** Finished spans made by the real SDK, recorded in memory. */
function record(run: (tracer: Tracer) => void): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "exporter-test", "host.cores": 8 }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  run(provider.getTracer("exporter-test", "1.2.3"));
  return memory.getFinishedSpans();
}

function twoSpans(): ReadableSpan[] {
  return record((tracer) => {
    tracer.startSpan("a").end();
    tracer.startSpan("b").end();
  });
}

function exportNow(target: OtlpExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => target.export(spans, resolve));
}

test("sends the OTLP JSON encoding: ids, times, kind, attributes of every type, events, links, status, resource, scope", async () => {
  const remoteParent = {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState("vendor=abc"),
  };
  const link: Link = { context: { traceId: "1".repeat(32), spanId: "2".repeat(16), traceFlags: 0 }, attributes: { why: "retry" } };
  const spans = record((tracer) => {
    const server = tracer.startSpan(
      "GET /items/{id}",
      {
        kind: SpanKind.SERVER,
        links: [link],
        attributes: {
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
        },
      },
      trace.setSpanContext(ROOT_CONTEXT, remoteParent),
    );
    server.addEvent("first byte", { bytes: 42 });
    const client = tracer.startSpan("GET", { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, server));
    client.setStatus({ code: SpanStatusCode.ERROR, message: "connection refused" });
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
    spanId: serverSpan.spanContext().spanId,
    parentSpanId: remoteParent.spanId,
    traceState: "vendor=abc",
    flags: 0x301, // sampled, parent remoteness known, parent remote
    name: "GET /items/{id}",
    kind: 2, // SPAN_KIND_SERVER
    startTimeUnixNano: BigInt(unixNano(serverSpan.startTime)),
    endTimeUnixNano: BigInt(unixNano(serverSpan.endTime)),
    attributes: {
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
    },
    events: [{ name: "first byte", timeUnixNano: BigInt(unixNano(serverSpan.events[0]!.time)), attributes: { bytes: 42 } }],
    links: [{ traceId: "1".repeat(32), spanId: "2".repeat(16), attributes: { why: "retry" } }],
    status: { code: 0, message: undefined },
    resource: { "service.name": "exporter-test", "host.cores": 8 },
    scope: { name: "exporter-test", version: "1.2.3" },
  });
  expect(client).toMatchObject({
    traceId: remoteParent.traceId,
    parentSpanId: server!.spanId,
    flags: 0x101, // a local parent
    kind: 3, // SPAN_KIND_CLIENT
    status: { code: 2, message: "connection refused" },
  });
  expect(client!.endTimeUnixNano).toBeGreaterThanOrEqual(client!.startTimeUnixNano);
});

test("unixNano writes [seconds, nanoseconds] as a decimal string", () => {
  expect(unixNano([1_700_000_000, 5])).toBe("1700000000000000005");
  expect(unixNano([0, 123])).toBe("123");
  expect(unixNano([12, 999_999_999])).toBe("12999999999");
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
