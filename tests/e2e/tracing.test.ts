/**
 * @module Tracing end to end, against a real OTLP/HTTP receiver: every sampled request's
 * spans arrive exactly once (through a reload and a stop), the app's `traceparent` names the
 * client span, client trace context is continued per the sampler, attributes follow the HTTP
 * semantic conventions, the server span ends with the body, and reloads build a provider
 * only when the exporter settings change.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { envName, OPTIONS } from "../../src/config.ts";
import { type ReceivedSpan, type Receiver, startReceiver } from "../fixtures/otlp-receiver.ts";
import { BUN, readMetrics, ROOT, rssKiB, type Sluice, startSluice, TARGETS, tempDir, until } from "../harness.ts";

const WS_APP = [BUN, join(ROOT, "tests/fixtures/ws-app.ts")];

/** SLUICE_* and OTEL_* variables inherited from the shell would change what these tests see. */
const CLEAN_ENV: Record<string, string> = {
  ...Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""])),
  ...Object.fromEntries(Object.keys(process.env).filter((name) => name.startsWith("OTEL_")).map((name) => [name, ""])),
  OTEL_EXPORTER_OTLP_ENDPOINT: "",
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "",
};

/** OTLP span kinds (the API's SpanKind + 1). */
const SERVER = 2;
const CLIENT = 3;

const receivers: Receiver[] = [];
afterEach(() => {
  for (const receiver of receivers.splice(0)) receiver.stop();
});

function receiver(): Receiver {
  const started = startReceiver();
  receivers.push(started);
  return started;
}

function configFile(lines: string[]): { path: string; write: (lines: string[]) => void } {
  const path = join(tempDir(), "sluice.toml");
  const write = (next: string[]) => writeFileSync(path, `${next.join("\n")}\n`);
  write(lines);
  return { path, write };
}

interface TraceParent {
  traceId: string;
  spanId: string;
  flags: string;
}

function parseTraceParent(header: unknown): TraceParent {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(header));
  if (!match) throw new Error(`not a traceparent: ${String(header)}`);
  return { traceId: match[1]!, spanId: match[2]!, flags: match[3]! };
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** GET /echo through sluice: the headers the app received. */
async function echo(sluice: Sluice, headers: Record<string, string> = {}, path = "/echo"): Promise<Record<string, string>> {
  const response = await fetch(`${sluice.url}${path}`, { headers });
  expect(response.status).toBe(200);
  return ((await response.json()) as { headers: Record<string, string> }).headers;
}

async function inFlight(sluice: Sluice, count: number): Promise<void> {
  await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === count, 20_000, `${count} in flight`);
}

async function reloads(sluice: Sluice, count: number): Promise<void> {
  await until(() => sluice.events("reload").length >= count, 30_000, `${count} reload records`);
  expect(sluice.events("reload").map((r) => r.result)).toEqual(Array(sluice.events("reload").length).fill("ok"));
}

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
  expect(sluice.records.at(-1)?.event).toBe("shutdown.complete");
}

/**
 * Checks the receiver holds exactly `requests` traces of one server span and one client span
 * under it, each span once; returns the server spans by span id.
 */
function expectExactlyOnce(spans: ReceivedSpan[], requests: number): Map<string, ReceivedSpan> {
  const ids = spans.map((span) => span.spanId);
  expect(new Set(ids).size).toBe(ids.length);
  const servers = spans.filter((span) => span.kind === SERVER);
  const clients = spans.filter((span) => span.kind === CLIENT);
  expect({ servers: servers.length, clients: clients.length, total: spans.length }).toEqual({
    servers: requests,
    clients: requests,
    total: 2 * requests,
  });
  expect(new Set(servers.map((span) => span.traceId)).size).toBe(requests);
  const byId = new Map(servers.map((span) => [span.spanId, span]));
  const children = new Map<string, number>();
  for (const client of clients) {
    const parent = byId.get(client.parentSpanId ?? "");
    expect(parent?.traceId).toBe(client.traceId);
    children.set(client.parentSpanId!, (children.get(client.parentSpanId!) ?? 0) + 1);
  }
  expect([...children.values()].every((count) => count === 1) && children.size === requests).toBe(true);
  return byId;
}

describe.each(TARGETS)("tracing ($name)", (target) => {
  test("each request's server and client span arrive exactly once, across a reload and a stop", async () => {
    const otlp = receiver();
    const file = configFile(['shutdown-delay = "200ms"', 'drain-timeout = "20s"']);
    // A schedule delay far beyond the test: spans queue up, only the stop-time flush sends them.
    const sluice = await startSluice(target, {
      args: ["--config", file.path],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "600000" },
    });
    const seen: TraceParent[] = [];
    for (let i = 0; i < 10; i++) seen.push(parseTraceParent((await echo(sluice)).traceparent));

    // In flight across a reload: they finish on the old pipeline.
    const atReload = [1500, 2000].map((ms) => fetch(`${sluice.url}/slow?ms=${ms}`));
    await inFlight(sluice, 2);
    file.write(['shutdown-delay = "200ms"', 'drain-timeout = "20s"', 'upstream-timeout = "40s"']);
    sluice.signal("SIGHUP");
    await reloads(sluice, 1);
    for (let i = 0; i < 10; i++) seen.push(parseTraceParent((await echo(sluice)).traceparent));
    expect((await Promise.all(atReload)).map((r) => r.status)).toEqual([200, 200]);

    // In flight when SIGTERM arrives: drained, then their spans flushed before exit.
    const atStop = [1000, 2000].map((ms) => fetch(`${sluice.url}/slow?ms=${ms}`));
    await inFlight(sluice, 2);
    expect(otlp.requests.length).toBe(0);
    // A slow receiver: the spans arrive before sluice exits only if its stop waits for the export.
    otlp.delayMs = 300;
    sluice.signal("SIGTERM");
    expect((await Promise.all(atStop)).map((r) => r.status)).toEqual([200, 200]);
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", drained: 2, aborted: 0 });

    // Everything arrived by the time sluice exited: nothing to wait for.
    expect(otlp.errors).toEqual([]);
    const servers = expectExactlyOnce(otlp.spans, 24);
    const paths = [...servers.values()].map((span) => span.attributes["url.path"]);
    expect(paths.filter((path) => path === "/slow").length).toBe(4);
    expect(paths.filter((path) => path === "/echo").length).toBe(20);
    for (const { traceId, spanId, flags } of seen) {
      expect(flags).toBe("01");
      expect(otlp.spans.filter((span) => span.kind === CLIENT && span.spanId === spanId && span.traceId === traceId).length).toBe(1);
    }
  }, 90_000);

  test("the app's traceparent names the client span; a client's sampled traceparent is continued", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });

    // A root trace: the app's traceparent is the client span, a child of the server span.
    const root = parseTraceParent((await echo(sluice)).traceparent);
    await otlp.waitForSpans(2, 20_000);
    const client = otlp.spans.find((span) => span.spanId === root.spanId)!;
    expect(client).toMatchObject({ kind: CLIENT, traceId: root.traceId });
    expect(root.flags).toBe("01");
    const server = otlp.spans.find((span) => span.spanId === client.parentSpanId)!;
    expect(server).toMatchObject({ kind: SERVER, traceId: root.traceId, parentSpanId: undefined });

    // A sampled parent from the client (parentbased_always_on is the default): same trace,
    // the server span's parent is the client's span, and tracestate goes on to the app.
    const traceId = randomHex(16);
    const parentId = randomHex(8);
    const headers = await echo(sluice, { traceparent: `00-${traceId}-${parentId}-01`, tracestate: "vendor=opaque" });
    const continued = parseTraceParent(headers.traceparent);
    expect(continued.traceId).toBe(traceId);
    expect(continued.spanId).not.toBe(parentId);
    expect(continued.flags).toBe("01");
    expect(headers.tracestate).toBe("vendor=opaque");
    await otlp.waitForSpans(4, 20_000);
    const server2 = otlp.spans.find((span) => span.kind === SERVER && span.traceId === traceId)!;
    expect(server2).toMatchObject({ parentSpanId: parentId, traceState: "vendor=opaque" });
    const client2 = otlp.spans.find((span) => span.kind === CLIENT && span.traceId === traceId)!;
    expect(client2).toMatchObject({ spanId: continued.spanId, parentSpanId: server2.spanId });

    // An unsampled parent is honoured too: the app sees the trace unsampled, nothing is sent.
    const unsampled = randomHex(16);
    const headers3 = await echo(sluice, { traceparent: `00-${unsampled}-${randomHex(8)}-00` });
    expect(parseTraceParent(headers3.traceparent)).toMatchObject({ traceId: unsampled, flags: "00" });

    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    expect(otlp.spans.filter((span) => span.traceId === unsampled)).toEqual([]);
    expectExactlyOnce(otlp.spans, 2);
  }, 60_000);

  test.each([
    { name: "always_off", env: { OTEL_TRACES_SAMPLER: "always_off" }, parentSampled: false },
    {
      name: "parentbased_traceidratio 0",
      env: { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
      parentSampled: true,
    },
  ])("$name sends nothing while requests still succeed", async ({ env, parentSampled }) => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, ...env, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    for (let i = 0; i < 20; i++) {
      expect(parseTraceParent((await echo(sluice)).traceparent).flags).toBe("00");
      const response = await fetch(`${sluice.url}/stream?chunks=2&gap=10`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("chunk 1\nchunk 2\n");
    }
    // A sampled parent: the parent-based sampler follows it, plain always_off does not.
    const traceId = randomHex(16);
    const headers = await echo(sluice, { traceparent: `00-${traceId}-${randomHex(8)}-01` });
    expect(parseTraceParent(headers.traceparent)).toMatchObject({ traceId, flags: parentSampled ? "01" : "00" });
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    if (parentSampled) {
      expect(otlp.spans.map((span) => span.traceId)).toEqual([traceId, traceId]);
      expectExactlyOnce(otlp.spans, 1);
    } else {
      expect(otlp.requests).toEqual([]);
    }
  }, 60_000);

  test("a client's tracestate does not go on with a trace restarted for an invalid traceparent", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const traceId = randomHex(16);
    const parentId = randomHex(8);
    // Not lower-case hex, the forbidden version ff, an all-zero trace id, no traceparent at all.
    const invalid = [`00-${traceId.toUpperCase()}-${parentId}-01`, `ff-${traceId}-${parentId}-01`, `00-${"0".repeat(32)}-${parentId}-01`, ""];
    for (const traceparent of invalid) {
      const headers = await echo(sluice, { ...(traceparent ? { traceparent } : {}), tracestate: "vendor=opaque" });
      expect({ traceparent, restarted: parseTraceParent(headers.traceparent).traceId !== traceId, tracestate: headers.tracestate })
        .toEqual({ traceparent, restarted: true, tracestate: undefined });
    }
    // A valid one is continued with its tracestate, as before.
    expect((await echo(sluice, { traceparent: `00-${traceId}-${parentId}-01`, tracestate: "vendor=opaque" })).tracestate).toBe("vendor=opaque");
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    expect(otlp.spans.filter((span) => span.traceState !== undefined).map((span) => span.traceId)).toEqual([traceId, traceId]);
  }, 60_000);

  test("OTEL_BSP_EXPORT_TIMEOUT bounds each export when it is shorter than the exporter's timeout", async () => {
    const otlp = receiver();
    otlp.delayMs = 120_000; // a collector that accepts the request and never answers
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--flush-timeout", "2s"],
      env: {
        ...CLEAN_ENV,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_TIMEOUT: "120000",
        OTEL_BSP_EXPORT_TIMEOUT: "300",
        OTEL_BSP_SCHEDULE_DELAY: "50",
      },
    });
    await echo(sluice);
    // The export of the request's two spans is given up (and counted) after 300 ms, not 120 s.
    await until(async () => (await readMetrics(sluice)).sluice_spans_dropped_total === 2, 20_000, "2 spans dropped");
    expect((await readMetrics(sluice)).sluice_spans_exported_total).toBe(0);
    await stop(sluice);
  }, 60_000);

  test("spans still unexported when --flush-timeout ends are not lost silently: a warning counts them", async () => {
    const otlp = receiver();
    otlp.delayMs = 120_000; // a collector that accepts the request and never answers
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--flush-timeout", "1s"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    await echo(sluice);
    // The first export (two spans) hangs; three more requests' spans wait behind it.
    await until(() => otlp.requests.length === 1, 20_000, "the first export");
    for (let i = 0; i < 3; i++) await echo(sluice);
    const startedAt = performance.now();
    await stop(sluice);
    expect(performance.now() - startedAt).toBeLessThan(5_000);
    const lost = sluice.events("tracing.flush.incomplete");
    expect(lost).toEqual([expect.objectContaining({ level: "WARNING", spans: 8 })]);
    // Before the last record, which still ends the output.
    expect(sluice.records.indexOf(lost[0]!)).toBeLessThan(sluice.records.length - 1);
  }, 60_000);

  test("a WebSocket handshake is a client span, whose traceparent the app gets; a refused one too", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      child: WS_APP,
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const traceId = randomHex(16);
    const parentId = randomHex(8);
    // Bun's WebSocket client takes request headers (not in the standard's constructor).
    const options = { headers: { traceparent: `00-${traceId}-${parentId}-01` } } as unknown as string[];
    const ws = new WebSocket(`ws://127.0.0.1:${sluice.httpPort}/ws`, options);
    const answer = new Promise<string>((resolve) => ws.addEventListener("message", (event) => resolve(String(event.data)), { once: true }));
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve);
      ws.addEventListener("error", reject);
    });
    ws.send("headers");
    const seen = parseTraceParent((JSON.parse(await answer) as Record<string, string>).traceparent);
    ws.close();
    const refused = await fetch(`${sluice.url}/refuse`, {
      headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
    });
    expect(refused.status).toBe(403);
    await refused.text();
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    // The app's traceparent names sluice's client span, in the client's trace, under the server span.
    expect(seen.traceId).toBe(traceId);
    const client = otlp.spans.find((span) => span.spanId === seen.spanId);
    expect(client).toMatchObject({ kind: CLIENT, traceId, attributes: { "http.response.status_code": 101 } });
    const server = otlp.spans.find((span) => span.spanId === client?.parentSpanId);
    expect(server).toMatchObject({ kind: SERVER, traceId, parentSpanId: parentId, attributes: { "http.response.status_code": 101 } });
    const refusedClient = otlp.spans.find((span) => span.kind === CLIENT && span.traceId !== traceId);
    expect(refusedClient?.attributes["http.response.status_code"]).toBe(403);
    expectExactlyOnce(otlp.spans, 2);
  }, 60_000);

  test("span status and error.type follow the HTTP conventions: a 4xx fails the client span only, a 5xx both", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--upstream-timeout", "500ms"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    for (const [path, status] of [["/status?code=404", 404], ["/status?code=503", 503], ["/hang", 504]] as const) {
      const response = await fetch(`${sluice.url}${path}`);
      expect(response.status).toBe(status);
      await response.text();
    }
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    expect(otlp.spans.filter((span) => span.kind === SERVER).length).toBe(3);
    const byStatus = (status: number) => {
      const server = otlp.spans.find((span) => span.kind === SERVER && span.attributes["http.response.status_code"] === status)!;
      const client = otlp.spans.find((span) => span.parentSpanId === server.spanId)!;
      const show = (span: ReceivedSpan) => ({ code: span.status.code, message: span.status.message, errorType: span.attributes["error.type"] });
      return { server: show(server), client: show(client) };
    };
    expect(byStatus(404)).toEqual({
      server: { code: 0, message: undefined, errorType: undefined },
      client: { code: 2, message: undefined, errorType: "404" },
    });
    expect(byStatus(503)).toEqual({
      server: { code: 2, message: undefined, errorType: "503" },
      client: { code: 2, message: undefined, errorType: "503" },
    });
    // sluice's own 504: the app never answered, the client span says why.
    expect(byStatus(504)).toEqual({
      server: { code: 2, message: undefined, errorType: "504" },
      client: { code: 2, message: "upstream-timeout", errorType: "upstream-timeout" },
    });
  }, 60_000);

  test("a method the HTTP conventions do not know is _OTHER, in spans named HTTP", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    for (const method of ["PURGE", "PROPFIND"]) {
      const response = await fetch(`${sluice.url}/echo`, { method });
      expect(response.status).toBe(200);
      expect(((await response.json()) as { method: string }).method).toBe(method);
    }
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    expectExactlyOnce(otlp.spans, 2);
    expect(otlp.spans.map((span) => [span.name, span.attributes["http.request.method"], span.attributes["http.request.method_original"]]).sort())
      .toEqual([
        ["HTTP", "_OTHER", "PROPFIND"],
        ["HTTP", "_OTHER", "PROPFIND"],
        ["HTTP", "_OTHER", "PURGE"],
        ["HTTP", "_OTHER", "PURGE"],
      ]);
  }, 60_000);

  test("failed exports are logged once per run of failures, and the recovery with the spans lost", async () => {
    const otlp = receiver();
    otlp.status = 401;
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: {
        ...CLEAN_ENV,
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20s3cr3t",
        OTEL_BSP_SCHEDULE_DELAY: "50",
      },
    });
    await echo(sluice);
    await until(async () => (await readMetrics(sluice)).sluice_spans_dropped_total === 2, 20_000, "2 spans dropped");
    await echo(sluice);
    await until(async () => (await readMetrics(sluice)).sluice_spans_dropped_total === 4, 20_000, "4 spans dropped");
    const failed = sluice.events("tracing.export.failed");
    expect(failed.length).toBe(1);
    expect(failed[0]).toMatchObject({ level: "WARNING", spans: 2 });
    expect(String(failed[0]!.error)).toContain(`${otlp.tracesUrl} answered 401`);
    expect(JSON.stringify(sluice.records)).not.toContain("s3cr3t");

    otlp.status = 200;
    await echo(sluice);
    await until(() => sluice.events("tracing.export.recovered").length === 1, 20_000, "the recovery record");
    expect(sluice.events("tracing.export.recovered")[0]).toMatchObject({ spans: 4 });
    await stop(sluice);
    expect(sluice.events("tracing.export.failed").length).toBe(1);
    expect(otlp.spans.length).toBe(2);
  }, 60_000);

  test("a receiver's endless answer is not read into memory", async () => {
    const mebibyte = new Uint8Array(1 << 20).fill(0x20);
    let chunks = 0;
    // 2xx with 300 MiB of body (JSON whitespace), made as it is read.
    const collector = Bun.serve({
      port: 0,
      fetch: async (request) => {
        await request.arrayBuffer();
        return new Response(new ReadableStream({ pull: (controller) => void (chunks++ < 300 ? controller.enqueue(mebibyte) : controller.close()) }));
      },
    });
    try {
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0"],
        env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`, OTEL_BSP_SCHEDULE_DELAY: "50" },
      });
      const before = rssKiB(sluice.proc.pid, "VmHWM");
      await echo(sluice);
      await until(async () => (await readMetrics(sluice)).sluice_spans_exported_total === 2, 20_000, "2 spans exported");
      // Not the 300 MiB: the answer is cut after its first 64 KiB.
      expect(rssKiB(sluice.proc.pid, "VmHWM") - before).toBeLessThan(100 * 1024);
      await stop(sluice);
    } finally {
      collector.stop(true);
    }
  }, 60_000);

  test("attributes follow the HTTP semantic conventions; names hold no path, query or credentials", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const withSecrets = `http://alice:hunter2@127.0.0.1:${sluice.httpPort}/echo?token=s3cr3t&x=1`;
    const response = await fetch(withSecrets, { headers: { "user-agent": "tracing-test/1" } });
    expect(response.status).toBe(200);
    const seen = parseTraceParent(((await response.json()) as { headers: Record<string, string> }).headers.traceparent);
    const failing = await fetch(`${sluice.url}/status?code=503&token=s3cr3t`, { method: "POST", body: "x" });
    expect(failing.status).toBe(503);
    await otlp.waitForSpans(4, 20_000);

    for (const span of otlp.spans) {
      expect(["GET", "POST"]).toContain(span.name);
      expect(JSON.stringify(span.attributes)).not.toMatch(/s3cr3t|hunter2|alice|token/);
      expect(span.resource["service.name"]).toBe("sluice");
    }
    const client = otlp.spans.find((span) => span.spanId === seen.spanId)!;
    const server = otlp.spans.find((span) => span.spanId === client.parentSpanId)!;
    expect(server.kind).toBe(SERVER);
    expect(server.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/echo",
      "url.scheme": "http",
      "http.response.status_code": 200,
      "server.address": "127.0.0.1",
      "server.port": sluice.httpPort,
      "client.address": "127.0.0.1",
      "user_agent.original": "tracing-test/1",
    });
    expect(server.status.code).toBe(0);
    expect(client.kind).toBe(CLIENT);
    expect(client.attributes).toMatchObject({
      "http.request.method": "GET",
      "url.full": `http://127.0.0.1:${sluice.targetPort}/echo`,
      "server.address": "127.0.0.1",
      "server.port": sluice.targetPort,
      "http.response.status_code": 200,
    });

    const failedServer = otlp.spans.find((span) => span.kind === SERVER && span.attributes["http.request.method"] === "POST")!;
    expect(failedServer.attributes).toMatchObject({ "url.path": "/status", "http.response.status_code": 503 });
    expect(failedServer.status.code).toBe(2);
    const failedClient = otlp.spans.find((span) => span.parentSpanId === failedServer.spanId)!;
    expect(failedClient.attributes).toMatchObject({
      "url.full": `http://127.0.0.1:${sluice.targetPort}/status`,
      "http.response.status_code": 503,
    });
    await stop(sluice);
    expect(otlp.errors).toEqual([]);
    expectExactlyOnce(otlp.spans, 2);
  }, 60_000);

  test("the server span ends after the response body has finished streaming", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const sentAt = Date.now();
    const response = await fetch(`${sluice.url}/stream?chunks=3&gap=400`);
    const reader = response.body!.getReader();
    const chunkTimes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const { done } = await reader.read();
      if (done) break;
      chunkTimes.push(Date.now());
    }
    const doneAt = Date.now();
    expect(chunkTimes.length).toBeGreaterThanOrEqual(3);
    await otlp.waitForSpans(2, 20_000);
    const server = otlp.spans.find((span) => span.kind === SERVER)!;
    const client = otlp.spans.find((span) => span.kind === CLIENT)!;
    const ms = (nanos: bigint) => Number(nanos / 1_000_000n);
    // Clocks: the spans' (performance.timeOrigin + now) against the test's Date.now(); a few
    // ms of skew is allowed, far below the 400 ms gaps.
    const skew = 25;
    expect(ms(server.startTimeUnixNano)).toBeGreaterThanOrEqual(sentAt - skew);
    expect(ms(server.endTimeUnixNano)).toBeGreaterThanOrEqual(chunkTimes.at(-1)! - skew);
    expect(ms(server.endTimeUnixNano)).toBeLessThanOrEqual(doneAt + skew);
    expect(ms(server.endTimeUnixNano - server.startTimeUnixNano)).toBeGreaterThanOrEqual(1100);
    // The client span covers the upstream call up to its response headers, so it ended early.
    expect(ms(client.endTimeUnixNano)).toBeLessThan(chunkTimes[1]!);
    await stop(sluice);
  }, 60_000);

  test("a small traced response keeps its Content-Length", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    const small = await fetch(`${sluice.url}/page?bytes=2000`, { headers: { "accept-encoding": "identity" } });
    expect([small.headers.get("content-length"), (await small.text()).length]).toEqual(["2000", 2000]);
    await stop(sluice);
  }, 60_000);

  test("a traced body of known length that arrives in halves streams, and its server span covers it", async () => {
    const otlp = receiver();
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: "50" },
      child: [BUN, join(ROOT, "tests/fixtures/halves-app.ts")],
    });
    const sentAt = Date.now();
    const reader = (await fetch(`${sluice.url}/`, { headers: { "accept-encoding": "identity" } })).body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    expect(Date.now() - sentAt).toBeLessThan(500); // the app sends the second half at 600 ms
    for (let part = await reader.read(); !part.done; part = await reader.read()) text += new TextDecoder().decode(part.value);
    expect(text).toBe("h".repeat(1000) + "r".repeat(1000));
    const doneAt = Date.now();
    await otlp.waitForSpans(2, 20_000);
    const server = otlp.spans.find((span) => span.kind === SERVER)!;
    const ms = (nanos: bigint) => Number(nanos / 1_000_000n);
    expect(ms(server.endTimeUnixNano - server.startTimeUnixNano)).toBeGreaterThanOrEqual(550);
    expect(ms(server.endTimeUnixNano)).toBeLessThanOrEqual(doneAt + 25);
    await stop(sluice);
  }, 60_000);

  test("a reload with unchanged exporter settings builds nothing", async () => {
    const otlp = receiver();
    const base = ['shutdown-delay = "0s"', `OTEL_EXPORTER_OTLP_ENDPOINT = "${otlp.url}"`, 'OTEL_BSP_SCHEDULE_DELAY = "50"'];
    const file = configFile(base);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    const providers = async () => {
      const metrics = await readMetrics(sluice);
      return { built: metrics.sluice_tracer_providers_built_total, active: metrics.sluice_tracer_providers_active };
    };
    expect(await providers()).toEqual({ built: 1, active: 1 });
    await echo(sluice);

    // The same file; another option; the sampler only (it is chosen per pipeline).
    const versions = [base, [...base, 'upstream-timeout = "40s"'], [...base, 'upstream-timeout = "40s"', 'OTEL_TRACES_SAMPLER = "always_on"']];
    for (const [i, lines] of versions.entries()) {
      file.write(lines);
      sluice.signal("SIGHUP");
      await reloads(sluice, i + 1);
      expect(await providers()).toEqual({ built: 1, active: 1 });
      await echo(sluice);
    }
    expect(sluice.events("reload").map((r) => r.changed)).toEqual([[], ["upstream-timeout"], ["tracing"]]);
    await otlp.waitForSpans(8, 20_000);
    await until(async () => (await readMetrics(sluice)).sluice_spans_exported_total === 8, 20_000, "8 spans counted");
    expect(await providers()).toEqual({ built: 1, active: 1 });
    await stop(sluice);
    expectExactlyOnce(otlp.spans, 4);
  }, 60_000);

  test("a reload that moves the endpoint builds one provider; in-flight spans go to the old one, then it shuts down", async () => {
    const [first, second] = [receiver(), receiver()];
    const lines = (url: string) => ['shutdown-delay = "0s"', `OTEL_EXPORTER_OTLP_ENDPOINT = "${url}"`, 'OTEL_BSP_SCHEDULE_DELAY = "50"'];
    const file = configFile(lines(first.url));
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    const providers = async () => {
      const metrics = await readMetrics(sluice);
      return { built: metrics.sluice_tracer_providers_built_total, active: metrics.sluice_tracer_providers_active };
    };
    const before: TraceParent[] = [];
    for (let i = 0; i < 5; i++) before.push(parseTraceParent((await echo(sluice)).traceparent));
    await first.waitForSpans(10, 20_000);

    const slow = [2000, 2500].map((ms) => fetch(`${sluice.url}/slow?ms=${ms}`));
    await inFlight(sluice, 2);
    file.write(lines(second.url));
    sluice.signal("SIGHUP");
    await reloads(sluice, 1);
    expect(sluice.events("reload")[0]!.changed).toEqual(["tracing"]);
    // The old provider lives on while the requests that started on it run.
    expect(await providers()).toEqual({ built: 2, active: 2 });
    const after: TraceParent[] = [];
    for (let i = 0; i < 5; i++) after.push(parseTraceParent((await echo(sluice)).traceparent));
    await second.waitForSpans(10, 20_000);

    expect((await Promise.all(slow)).map((r) => r.status)).toEqual([200, 200]);
    await until(async () => (await providers()).active === 1, 20_000, "the old provider shut down");
    expect(await providers()).toEqual({ built: 2, active: 1 });
    // Its last spans were flushed before it shut down.
    expect(first.spans.length).toBe(14);
    expect(second.spans.length).toBe(10);
    const firstServers = expectExactlyOnce(first.spans, 7);
    expect([...firstServers.values()].filter((span) => span.attributes["url.path"] === "/slow").length).toBe(2);
    expectExactlyOnce(second.spans, 5);
    for (const { traceId } of before) expect(first.spans.filter((span) => span.traceId === traceId).length).toBe(2);
    for (const { traceId } of after) expect(second.spans.filter((span) => span.traceId === traceId).length).toBe(2);
    expect((await readMetrics(sluice)).sluice_spans_exported_total).toBe(24);
    expect((await readMetrics(sluice)).sluice_spans_dropped_total).toBe(0);

    await stop(sluice);
    expect(first.errors).toEqual([]);
    expect(second.errors).toEqual([]);
    expect(first.spans.length + second.spans.length).toBe(24);
  }, 60_000);
});
