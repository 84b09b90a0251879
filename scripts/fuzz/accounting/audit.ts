/**
 * Accounting audit: drives a mix of outcomes through sluice (both runtimes) and compares the
 * access log, /metrics, the client's own view and the server spans. Run:
 *   bun test ./scripts/fuzz/accounting/audit.ts            (AUDIT_TARGET=binary|deno to pick one)
 * It reports mismatches (console) and fails on any.
 */
import { expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type LogRecord, readMetrics, type Sluice, startSluice, TARGETS, tempDir, until } from "../../../tests/harness.ts";
import { type ReceivedSpan, startReceiver } from "../../../tests/fixtures/otlp-receiver.ts";
import { type RawOptions, type RawResult, rawRequest } from "./raw-client.ts";

const BUN = join(import.meta.dir, "../../../node_modules/.bin/bun");
const APP = [BUN, join(import.meta.dir, "audit-app.ts")];

interface Sent {
  id: string;
  kind: string;
  /** Body bytes the client sent whole. */
  sentBody?: number;
  result: RawResult;
  /** The client cut it on purpose (cancel, read part). */
  clientCut?: boolean;
  /** No access record expected (refused by the runtime itself). */
  noRecord?: boolean;
  /** Sent as it is, without a tag segment. */
  rawPath?: boolean;
}

let counter = 0;
const nextId = () => `a${++counter}`;

async function send(sluice: Sluice, kind: string, options: Omit<RawOptions, "path"> & { path: string }, extra: Partial<Sent> = {}): Promise<Sent> {
  const id = nextId();
  const path = extra.rawPath || options.path.startsWith("/t/") ? options.path : `/t/${id}${options.path}`;
  const result = await rawRequest(sluice.httpPort, {
    ...options,
    path,
    headers: { "x-request-id": id, "user-agent": `audit-${id}`, ...options.headers },
  });
  const sentBody = options.body ? options.body.reduce((n, p) => n + p.bytes, 0) : undefined;
  return { id, kind, result, ...(sentBody !== undefined ? { sentBody } : {}), clientCut: options.cancelAfterMs !== undefined || options.readBodyBytes !== undefined, ...extra };
}

async function websocket(sluice: Sluice, kind: string, messages: number, holdMs = 0): Promise<Sent> {
  const id = nextId();
  let received = 0;
  let opened = false;
  const ws = new WebSocket(`ws://127.0.0.1:${sluice.httpPort}/t/${id}/ws`, { headers: { "x-request-id": id, "user-agent": `audit-${id}` } } as never);
  ws.binaryType = "arraybuffer";
  const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
  await new Promise<void>((resolve) => {
    ws.addEventListener("open", () => ((opened = true), resolve()));
    ws.addEventListener("error", () => resolve());
  });
  ws.addEventListener("message", (e) => (received += typeof e.data === "string" ? new TextEncoder().encode(e.data).length : (e.data as ArrayBuffer).byteLength));
  if (opened) {
    for (let i = 0; i < messages; i++) ws.send(`message ${i}`);
    await Bun.sleep(200 + holdMs);
    ws.close(1000);
  }
  const code = await Promise.race([closed, Bun.sleep(5000).then(() => -1)]);
  return { id, kind, result: { status: opened ? 101 : null, bodyBytes: received, complete: code === 1000, closedByClient: false, error: `close ${code}` } };
}

/** sluice_requests_total by code, and the histogram count. */
function requestCounts(metrics: Record<string, number>): { byCode: Map<number, number>; histogram: number; sum: number; inFlight: number; held: number } {
  const byCode = new Map<number, number>();
  for (const [series, value] of Object.entries(metrics)) {
    const match = /^sluice_requests_total\{code="(\d+)"\}$/.exec(series);
    if (match) byCode.set(Number(match[1]), value);
  }
  return {
    byCode,
    histogram: metrics.sluice_request_duration_seconds_count ?? 0,
    sum: metrics.sluice_request_duration_seconds_sum ?? 0,
    inFlight: metrics.sluice_requests_in_flight ?? NaN,
    held: metrics.sluice_requests_held ?? NaN,
  };
}

function diffCounts(before: Map<number, number>, after: Map<number, number>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [code, n] of after) if (n - (before.get(code) ?? 0) !== 0) out.set(code, n - (before.get(code) ?? 0));
  return out;
}

function countStatuses(records: LogRecord[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of records) out.set(r.status as number, (out.get(r.status as number) ?? 0) + 1);
  return out;
}

const show = (m: Map<number, number>) => JSON.stringify([...m].sort((a, b) => a[0] - b[0]));

function check(problems: string[], target: string, phase: string, sent: Sent[], records: LogRecord[], spans: ReceivedSpan[] | undefined) {
  const byId = new Map<string, LogRecord[]>();
  for (const r of records) {
    const id = r.requestId as string;
    byId.set(id, [...(byId.get(id) ?? []), r]);
  }
  for (const s of sent) {
    const recs = byId.get(s.id) ?? [];
    const where = `[${target}/${phase}] ${s.kind} ${s.id}`;
    const client = `client status=${s.result.status} bytes=${s.result.bodyBytes} complete=${s.result.complete}${s.result.error ? ` err=${s.result.error}` : ""}`;
    if (s.noRecord) {
      if (recs.length !== 0) problems.push(`${where}: expected no access record, got ${recs.length}: ${JSON.stringify(recs)}`);
      continue;
    }
    if (recs.length !== 1) {
      problems.push(`${where}: ${recs.length} access records (${client}) ${JSON.stringify(recs)}`);
      continue;
    }
    const r = recs[0]!;
    const rec = `record status=${r.status} bytesOut=${r.bytesOut} bytesIn=${r.bytesIn} outcome=${r.outcome ?? "complete"}`;
    const status = r.status as number;
    if (s.result.status === null) {
      if (!(status === 499 || status === 444)) problems.push(`${where}: client got no status, ${rec}; ${client}`);
    } else if (status !== s.result.status && !(status === 499 && s.clientCut)) {
      problems.push(`${where}: status mismatch: ${rec}; ${client}`);
    }
    if (!s.clientCut && s.result.status !== null && r.bytesOut !== s.result.bodyBytes) {
      problems.push(`${where}: bytesOut mismatch: ${rec}; ${client}`);
    }
    if (s.clientCut && (r.bytesOut as number) < s.result.bodyBytes) problems.push(`${where}: bytesOut below what the client got: ${rec}; ${client}`);
    if (s.sentBody !== undefined && (r.bytesIn as number) > s.sentBody) problems.push(`${where}: bytesIn above the bytes sent: ${rec}; sent ${s.sentBody}`);
    if (s.sentBody !== undefined && status < 400 && r.bytesIn !== s.sentBody) problems.push(`${where}: bytesIn mismatch: ${rec}; sent ${s.sentBody}`);
    if (spans) {
      const matching = spans.filter((span) => span.kind === 2 && span.attributes["user_agent.original"] === `audit-${s.id}`);
      if (matching.length !== 1) problems.push(`${where}: ${matching.length} server spans; ${rec}`);
      else if (matching[0]!.attributes["http.response.status_code"] !== status) {
        problems.push(`${where}: span status ${matching[0]!.attributes["http.response.status_code"]}; ${rec}`);
      }
    }
  }
  // Records with no client request of ours (ids sluice generated).
  const ours = new Set(sent.map((s) => s.id));
  for (const r of records) if (!ours.has(r.requestId as string)) problems.push(`[${target}/${phase}] access record for no request of ours: ${JSON.stringify(r)}`);
}

async function auditTarget(targetName: string, fast: boolean): Promise<string[]> {
  const target = TARGETS.find((t) => t.name === targetName)!;
  const problems: string[] = [];
  const dir = tempDir();
  mkdirSync(join(dir, "public"));
  writeFileSync(join(dir, "public", "file.bin"), new Uint8Array(5000).fill(66));
  writeFileSync(join(dir, "public", "page.html"), "<p>static</p>\n".repeat(500));
  writeFileSync(join(dir, "public", "doc.txt"), "plain text file\n".repeat(400));
  writeFileSync(join(dir, "504.html"), "<h1>timeout</h1>\n".repeat(200));
  writeFileSync(join(dir, "503.html"), "<h1>unavailable</h1>\n".repeat(200));
  const receiver = startReceiver();
  const sluice = await startSluice(target, {
    child: APP,
    args: [
      "--restart", "always", "--hold-timeout", "2s", "--upstream-timeout", "1s", "--max-request-body", "10000",
      "--body-timeout", "1s", "--public-dir", join(dir, "public"), "--x-sendfile-dirs", dir, "--shutdown-delay", "0",
      "--drain-timeout", "500ms", "--max-header-count", "50", "--restart-max-delay", "250ms", "--max-held-requests", "6",
      "--gateway-timeout-page", join(dir, "504.html"), "--unavailable-page", join(dir, "503.html"),
    ],
    env: { STATE_DIR: dir, RESTART_BIND_DELAY_MS: "300", STOP_LINGER_MS: "800", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "50", OTEL_TRACES_SAMPLER: "always_on" },
  });
  try {
    const accessSince = (n: number) => sluice.records.slice(n).filter((r) => r.event === "access");
    const m0 = requestCounts(await readMetrics(sluice));
    let mark = sluice.records.length;
    const all: Sent[] = [];
    if (!fast) {
    // Phase 1: a mix, concurrently.
    const mix: Promise<Sent>[] = [
      send(sluice, "small", { path: "/small" }),
      send(sluice, "small-100k", { path: "/small?bytes=100000" }),
      send(sluice, "big-gzip", { path: "/big", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "big-small-gzip", { path: "/big?bytes=5000", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "big-plain", { path: "/big?bytes=200000" }),
      send(sluice, "head-big", { method: "HEAD", path: "/big" }),
      send(sluice, "head-gzip", { method: "HEAD", path: "/big", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "stream", { path: "/stream?chunks=5&gap=20" }),
      send(sluice, "stream-gzip", { path: "/stream?chunks=5&gap=20", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "stream-error", { path: "/stream-error" }),
      send(sluice, "stream-cut-by-client", { path: "/stream?chunks=0&gap=20", readBodyBytes: 500 }),
      send(sluice, "big-cut-by-client", { path: "/small?bytes=5000000", readBodyBytes: 1000 }),
      send(sluice, "cancel-slow", { path: "/slow?ms=1500", cancelAfterMs: 300 }),
      send(sluice, "cancel-fast", { path: "/slow?ms=1500", cancelAfterMs: 20 }),
      send(sluice, "upload", { method: "POST", path: "/upload", body: [{ bytes: 3000 }, { bytes: 3000, delayMs: 50 }] }),
      send(sluice, "upload-413", { method: "POST", path: "/upload", body: [{ bytes: 20000 }] }),
      send(sluice, "upload-413-chunked", { method: "POST", path: "/upload", headers: { "transfer-encoding": "chunked" }, rawHeaderLines: [] }),
      send(sluice, "upload-408", { method: "POST", path: "/upload", headers: { "content-length": "5000" }, body: [{ bytes: 1000 }] }),
      send(sluice, "504", { path: "/hang" }),
      send(sluice, "app-502", { path: "/status?code=502&body=app" }),
      send(sluice, "app-204", { path: "/status?code=204" }),
      send(sluice, "app-304", { path: "/status?code=304" }),
      send(sluice, "404", { path: "/nothing" }),
      send(sluice, "sendfile", { path: "/sendfile" }),
      send(sluice, "sendfile-head", { method: "HEAD", path: "/sendfile" }),
      send(sluice, "sendfile-range", { path: "/sendfile", headers: { range: "bytes=0-99" } }),
      send(sluice, "bad-host-400", { path: "/small", headers: { host: "a/b" } }),
      send(sluice, "431", { path: "/small", rawHeaderLines: Array.from({ length: 60 }, (_, i) => `x-h${i}: 1`) }),
      // CONNECT needs an authority: Deno answers this one 400 itself, before sluice sees it.
      send(sluice, "connect-origin-form", { method: "CONNECT", path: "/small" }, { noRecord: targetName === "deno" }),
      send(sluice, "te-gzip-501", { method: "POST", path: "/upload", headers: { "transfer-encoding": "gzip, chunked" } }, targetName === "binary" ? { noRecord: true } : {}),
      send(sluice, "ws-refuse", { path: "/ws-refuse", headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } }),
      send(sluice, "ws-badversion-426", { path: "/ws", headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "8", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } }),
      send(sluice, "ws-badkey-400", { path: "/ws", headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-version": "13", "sec-websocket-key": "short" } }),
      websocket(sluice, "websocket", 3),
      send(sluice, "connect-authority-501", { method: "CONNECT", path: "127.0.0.1:443" }, { rawPath: true }),
      send(sluice, "upload-declared-huge-413", { method: "POST", path: "/upload", headers: { "content-length": "1000000000000" }, body: [{ bytes: 10 }] }),
      send(sluice, "upload-unread", { method: "POST", path: "/small", body: [{ bytes: 5000 }] }),
      send(sluice, "upload-chunked", { method: "POST", path: "/upload", chunked: true, body: [{ bytes: 3000 }, { bytes: 2000, delayMs: 30 }] }),
      send(sluice, "upload-chunked-413", { method: "POST", path: "/upload", chunked: true, body: [{ bytes: 8000 }, { bytes: 8000, delayMs: 30 }] }),
      send(sluice, "upload-cancel", { method: "POST", path: "/upload", headers: { "content-length": "5000" }, body: [{ bytes: 1000 }], cancelAfterMs: 300 }),
      send(sluice, "upload-expect-413", { method: "POST", path: "/upload", headers: { expect: "100-continue" }, body: [{ bytes: 20000, delayMs: 100 }] }),
      send(sluice, "stream-gzip-cut-by-client", { path: "/stream?chunks=0&gap=10", headers: { "accept-encoding": "gzip" }, readBodyBytes: 300 }),
      send(sluice, "big-gzip-cut-by-client", { path: "/big?bytes=3000000", headers: { "accept-encoding": "gzip" }, readBodyBytes: 100 }),
      send(sluice, "504-page-gzip", { path: "/hang", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "sendfile-text-gzip", { path: "/sendfile?name=doc.txt", headers: { "accept-encoding": "gzip" } }),
      send(sluice, "static-text-gzip", { path: "/doc.txt", headers: { "accept-encoding": "gzip" } }, { rawPath: true }),
      send(sluice, "static-range", { path: "/doc.txt", headers: { range: "bytes=10-19" } }, { rawPath: true }),
      send(sluice, "static-cut-by-client", { path: "/doc.txt", readBodyBytes: 10 }, { rawPath: true }),
      send(sluice, "options-star", { method: "OPTIONS", path: "*" }, { rawPath: true, noRecord: targetName === "binary" }),
    ];
    // The cache: a miss, then hits, then a revalidation.
    const cacheId = `/t/cache/cacheable`;
    all.push(await send(sluice, "cache-miss", { path: cacheId }));
    all.push(await send(sluice, "cache-hit", { path: cacheId }));
    all.push(await send(sluice, "cache-hit-gzip", { path: cacheId, headers: { "accept-encoding": "gzip" } }));
    all.push(await send(sluice, "cache-304", { path: cacheId, headers: { "if-none-match": '"v1"' } }));
    all.push(await send(sluice, "cache-head", { method: "HEAD", path: cacheId }));
    all.push(await send(sluice, "cache-no-cache", { path: cacheId, headers: { "cache-control": "no-cache" } }));
    all.push(await send(sluice, "static-file", { path: "/page.html" }, { rawPath: true }));
    all.push(await send(sluice, "static-file-gzip", { path: "/page.html", headers: { "accept-encoding": "gzip" } }, { rawPath: true }));
    all.push(await send(sluice, "static-head", { method: "HEAD", path: "/page.html" }, { rawPath: true }));
    all.push(await send(sluice, "static-304", { path: "/file.bin", headers: { "if-modified-since": new Date(Date.now() + 60_000).toUTCString() } }, { rawPath: true }));
    all.push(...(await Promise.all(mix)));
    // Phase 2: crashes with --restart: a GET replayed, a POST 502, held requests answered.
    const wsCrash = websocket(sluice, "websocket-child-crashes", 2, 1000);
    await Bun.sleep(100);
    all.push(await send(sluice, "stream-crash-midway", { path: "/stream-crash?id=0" }), await wsCrash);
    await sluice.waitFor(() => sluice.records.filter((x) => x.event === "child.ready").length >= 2, 20_000).catch(() => {});
    const crash = send(sluice, "crash-replayed-get", { path: "/crash?id=1" });
    const crashPost = send(sluice, "crash-post-502", { method: "POST", path: "/crash?id=2", body: [{ bytes: 10 }] });
    await Bun.sleep(400);
    const held = Array.from({ length: 5 }, () => send(sluice, "held-answered", { path: "/small" }));
    all.push(await crash, await crashPost, ...(await Promise.all(held)));
    await sluice.waitFor((r) => r.event === "ready" && sluice.records.filter((x) => x.event === "child.ready").length >= 3, 20_000).catch(() => {});
    // Held requests that time out: the restarted child binds 3 s late (--hold-timeout 2s).
    writeFileSync(join(dir, "restart-delay"), "3000");
    const crash3 = send(sluice, "crash-replay-held-503", { path: "/crash?id=3" });
    await Bun.sleep(400);
    const heldCancel = send(sluice, "held-cancel-499", { path: "/small", cancelAfterMs: 300 });
    await Bun.sleep(50);
    const heldOut = Array.from({ length: 8 }, () => send(sluice, "held-timeout-503-or-overflow", { path: "/small" }));
    all.push(await crash3, ...(await Promise.all(heldOut)), await heldCancel);
    writeFileSync(join(dir, "restart-delay"), "0");
    await sluice.waitFor(() => sluice.records.filter((x) => x.event === "child.ready").length >= 4, 20_000).catch(() => {});
    // Phase 3: SIGHUP during load.
    const reloadLoad = [
      ...Array.from({ length: 6 }, () => send(sluice, "reload-slow", { path: "/slow?ms=600" })),
      ...Array.from({ length: 3 }, () => send(sluice, "reload-stream", { path: "/stream?chunks=10&gap=50" })),
      ...Array.from({ length: 3 }, () => send(sluice, "reload-small", { path: "/small" })),
    ];
    await Bun.sleep(150);
    sluice.signal("SIGHUP");
    const after = Array.from({ length: 5 }, (_, i) => Bun.sleep(20 * i).then(() => send(sluice, "reload-during", { path: "/small?bytes=70000" })));
    all.push(...(await Promise.all([...reloadLoad, ...after])));
    await sluice.waitFor("reload", 10_000).catch(() => {});
    await Bun.sleep(300);
    }
    const m1 = fast ? m0 : requestCounts(await readMetrics(sluice));
    const phase1 = accessSince(mark);
    if (show(diffCounts(m0.byCode, m1.byCode)) !== show(countStatuses(phase1))) {
      problems.push(`[${targetName}/run] metrics by code ${show(diffCounts(m0.byCode, m1.byCode))} != access records ${show(countStatuses(phase1))}`);
    }
    const durationSum = phase1.reduce((sum, r) => sum + (r.durationMs as number), 0) / 1000;
    const histogramSum = (m1.sum - m0.sum);
    if (Math.abs(durationSum - histogramSum) > phase1.length * 0.001) problems.push(`[${targetName}/run] histogram sum +${histogramSum}s != records' durationMs sum ${durationSum}s`);
    if (m1.histogram - m0.histogram !== phase1.length) problems.push(`[${targetName}/run] histogram count +${m1.histogram - m0.histogram} != ${phase1.length} records`);
    if (m1.inFlight !== 0 || m1.held !== 0) problems.push(`[${targetName}/run] in flight ${m1.inFlight}, held ${m1.held} after the run`);
    await receiver.waitForSpans(1, 5000).catch(() => {});
    await Bun.sleep(500);
    check(problems, targetName, "run", all, phase1, receiver.spans);
    // Phase 4: SIGTERM during load.
    mark = sluice.records.length;
    const stopSent: Promise<Sent>[] = [
      ...Array.from({ length: 4 }, () => send(sluice, "stop-slow-drained", { path: "/slow?ms=400" })),
      ...Array.from({ length: 2 }, () => send(sluice, "stop-hang-cut", { path: "/hang", timeoutMs: 10_000 })),
      ...Array.from({ length: 2 }, () => send(sluice, "stop-endless-stream-cut", { path: "/stream?chunks=0&gap=30", timeoutMs: 10_000 })),
      send(sluice, "stop-hang-gzip-page", { path: "/hang", headers: { "accept-encoding": "gzip" }, timeoutMs: 10_000 }),
      send(sluice, "stop-stream-gzip-cut", { path: "/stream?chunks=0&gap=30", headers: { "accept-encoding": "gzip" }, timeoutMs: 10_000 }),
      send(sluice, "stop-sse-cut", { path: "/sse", timeoutMs: 10_000 }),
      send(sluice, "stop-upload-slow", { method: "POST", path: "/upload", body: [{ bytes: 100 }, { bytes: 100, delayMs: 500 }, { bytes: 100, delayMs: 500 }] }),
      websocket(sluice, "stop-websocket", 2, 3000),
    ];
    await Bun.sleep(200);
    let last = await readMetrics(sluice);
    sluice.signal(fast ? "SIGQUIT" : "SIGTERM");
    let exited = false;
    void sluice.exited.then(() => (exited = true));
    const pollErrors: string[] = [];
    let lastAt = 0;
    /** Records the harness had read when the last successful scrape began. */
    let lastSeen = 0;
    const poll = (async () => {
      for (let i = 0; i < 400 && !exited; i++) {
        const seenBefore = sluice.records.length;
        try {
          last = await readMetrics(sluice);
          lastAt = performance.now();
          lastSeen = seenBefore;
        } catch (error) {
          pollErrors.push(`${Math.round(performance.now())}: ${error}`);
        }
        await Bun.sleep(20);
      }
    })();
    const stopResults = await Promise.all(stopSent);
    await sluice.exitCode(20_000);
    await poll;
    const phase2 = accessSince(mark);
    const closeAdmin = sluice.records.find((r) => r.event === "stop.phase" && r.step === "close-admin");
    console.log(`[${targetName}] stop-phase records: ${sluice.records.slice(mark).filter((r) => r.event === "access" || r.event === "stop.phase" || r.event === "shutdown.complete").map((r) => `${r.event}:${r.status ?? r.step ?? ""}@${String(r["@timestamp"]).slice(17, 23)}`).join(" ")}`);
    console.log(`[${targetName}] last metrics read at ${Math.round(lastAt)}; poll errors: ${pollErrors.slice(0, 3).join(" | ")} (${pollErrors.length}); stop phases: ${JSON.stringify(sluice.records.filter((r) => r.event === "stop.phase").map((r) => [r.step, r["@timestamp"]]))}`);
    const mf = requestCounts(last);
    const drainEnd = sluice.records.find((r) => r.event === "stop.phase" && r.step === "drain");
    // A scrape can only see the stop's last requests between the drain's end and the admin
    // listener's close: milliseconds in a fast stop. Compared only when one landed there.
    const scrapedAfterDrain = drainEnd !== undefined && sluice.records.indexOf(drainEnd) < lastSeen;
    if (!scrapedAfterDrain) console.log(`[${targetName}] no scrape after the drain: stop metrics not compared`);
    else if (show(diffCounts(m1.byCode, mf.byCode)) !== show(countStatuses(phase2))) {
      problems.push(`[${targetName}/stop] metrics by code ${show(diffCounts(m1.byCode, mf.byCode))} != access records ${show(countStatuses(phase2))}`);
    }
    if (scrapedAfterDrain && mf.histogram - m1.histogram !== phase2.length) problems.push(`[${targetName}/stop] histogram +${mf.histogram - m1.histogram} != ${phase2.length} records`);
    if (scrapedAfterDrain && (mf.inFlight !== 0 || mf.held !== 0)) problems.push(`[${targetName}/stop] in flight ${mf.inFlight}, held ${mf.held} at the end`);
    check(problems, targetName, "stop", stopResults, phase2, receiver.spans);
    console.log(`[${targetName}] shutdown: ${JSON.stringify(sluice.events("shutdown.complete"))}`);
    for (const s of [...all, ...stopResults]) {
      const r = sluice.records.find((x) => x.event === "access" && x.requestId === s.id);
      console.log(`${targetName} ${s.kind.padEnd(26)} client=${s.result.status}/${s.result.bodyBytes}${s.result.complete ? "" : "(cut)"} log=${r?.status}/${r?.bytesOut}/in${r?.bytesIn} ${r?.outcome ?? ""}`);
    }
  } finally {
    receiver.stop();
    try {
      sluice.signal("SIGKILL");
    } catch {}
  }
  return problems;
}

/**
 * Differences the README documents ("What the records count"): under Deno an upload still
 * arriving when the listener closes is logged as a client gone (499, bytesOut 0) while its
 * client gets that 499 answer (denoland/deno#36809).
 */
function isKnown(problem: string): boolean {
  return problem.startsWith("[deno/stop] stop-upload-slow") && problem.includes("record status=499 bytesOut=0") && problem.includes("client status=499");
}

function expectNoneUnknown(problems: string[]): void {
  for (const p of problems) console.log(`${isKnown(p) ? "KNOWN (documented)" : "MISMATCH"} ${p}`);
  expect(problems.filter((p) => !isKnown(p))).toEqual([]);
}

for (const name of (process.env.AUDIT_TARGET ?? "binary,deno").split(",")) {
  test(`accounting audit: ${name}`, async () => expectNoneUnknown(await auditTarget(name, false)), 120_000);
  // A fast stop closes the listener too: Deno's upload cut is the same known difference.
  test(`accounting audit, fast stop: ${name}`, async () => expectNoneUnknown(await auditTarget(name, true)), 120_000);
}

/**
 * Keep-alive load (fetch's pooled connections) with a reload mid-way that changes the tracing
 * settings (a new tracer provider; the old one flushed after its last request): per-status
 * counts, the histogram, spans and the client's statuses must still agree one for one.
 */
async function auditLoadReload(targetName: string): Promise<string[]> {
  const target = TARGETS.find((t) => t.name === targetName)!;
  const problems: string[] = [];
  const dir = tempDir();
  const receiver = startReceiver();
  const configFile = join(dir, "sluice.toml");
  const config = (service: string) => `OTEL_EXPORTER_OTLP_ENDPOINT = "${receiver.url}"\nOTEL_SERVICE_NAME = "${service}"\nOTEL_BSP_SCHEDULE_DELAY = "50"\n`;
  writeFileSync(configFile, config("before"));
  const sluice = await startSluice(target, {
    child: APP,
    args: ["--config", configFile, "--shutdown-delay", "0", "--drain-timeout", "5s"],
    env: { STATE_DIR: dir, OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_SERVICE_NAME: "" },
  });
  try {
    const m0 = requestCounts(await readMetrics(sluice));
    const mark = sluice.records.length;
    const seen = new Map<string, { status: number; bytes: number }>();
    const paths = ["/small", "/small?bytes=90000", "/stream?chunks=3&gap=5", "/status?code=404&body=nope", "/slow?ms=30", "/status?code=204"];
    let n = 0;
    const one = async () => {
      const id = `L${++n}`;
      const path = paths[n % paths.length]!;
      try {
        const response = await fetch(`${sluice.url}/t/${id}${path}`, { headers: { "x-request-id": id, "user-agent": `audit-${id}`, "accept-encoding": "identity" } });
        seen.set(id, { status: response.status, bytes: (await response.arrayBuffer()).byteLength });
      } catch (error) {
        seen.set(id, { status: -1, bytes: 0 });
      }
    };
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; i < 25; i++) {
        await one();
        if (w === 0 && i === 10) {
          writeFileSync(configFile, config("after"));
          sluice.signal("SIGHUP");
        }
      }
    });
    await Promise.all(workers);
    await sluice.waitFor("reload", 10_000).catch(() => problems.push(`[${targetName}/load] no reload record`));
    await Bun.sleep(500);
    const m1 = requestCounts(await readMetrics(sluice));
    const records = sluice.records.slice(mark).filter((r) => r.event === "access");
    if (show(diffCounts(m0.byCode, m1.byCode)) !== show(countStatuses(records))) problems.push(`[${targetName}/load] metrics ${show(diffCounts(m0.byCode, m1.byCode))} != records ${show(countStatuses(records))}`);
    if (m1.histogram - m0.histogram !== records.length) problems.push(`[${targetName}/load] histogram +${m1.histogram - m0.histogram} != ${records.length}`);
    if (m1.inFlight !== 0) problems.push(`[${targetName}/load] in flight ${m1.inFlight}`);
    if (records.length !== seen.size) problems.push(`[${targetName}/load] ${records.length} records for ${seen.size} requests`);
    await until(() => receiver.spans.filter((s) => s.kind === 2).length >= records.length, 10_000, "spans").catch(() => {});
    const servers = receiver.spans.filter((s) => s.kind === 2);
    const services = new Set(servers.map((s) => s.resource["service.name"]));
    console.log(`[${targetName}/load] ${records.length} records, ${servers.length} server spans, services ${[...services].join(",")}, reload ${JSON.stringify(sluice.events("reload").map((r) => r.result))}`);
    for (const [id, client] of seen) {
      const recs = records.filter((r) => r.requestId === id);
      if (recs.length !== 1) {
        problems.push(`[${targetName}/load] ${id}: ${recs.length} records`);
        continue;
      }
      const r = recs[0]!;
      if (r.status !== client.status || r.bytesOut !== client.bytes) problems.push(`[${targetName}/load] ${id} ${r.path}: record ${r.status}/${r.bytesOut}, client ${client.status}/${client.bytes}`);
      const spans = servers.filter((s) => s.attributes["user_agent.original"] === `audit-${id}`);
      if (spans.length !== 1 || spans[0]!.attributes["http.response.status_code"] !== r.status) problems.push(`[${targetName}/load] ${id}: ${spans.length} spans ${JSON.stringify(spans.map((s) => s.attributes["http.response.status_code"]))} for record ${r.status}`);
    }
    sluice.signal("SIGTERM");
    await sluice.exitCode(20_000);
  } finally {
    receiver.stop();
    try {
      sluice.signal("SIGKILL");
    } catch {}
  }
  return problems;
}

for (const name of (process.env.AUDIT_TARGET ?? "binary,deno").split(",")) {
  test(`accounting audit, keep-alive load with a tracing reload: ${name}`, async () => {
    const problems = await auditLoadReload(name);
    for (const p of problems) console.log(`MISMATCH ${p}`);
    expect(problems).toEqual([]);
  }, 120_000);
}
