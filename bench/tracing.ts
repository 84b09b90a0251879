/**
 * Tracing cost benchmark: sluice with tracing off, on at sampling 0 and on at sampling 1,
 * against the same run's raw Bun proxy (bench/raw-proxy.ts).
 *
 *   node_modules/.bin/bun bench/tracing.ts
 *
 * Environment (as bench/proxy.ts):
 *   BENCH_DURATION  measured wrk run length (default 10s; "10", "10s", "1m")
 *   BENCH_WARMUP    warm-up run before each measured run (default 2s)
 *   BENCH_ROUNDS    rounds of raw/off/sampling 0/sampling 1 (default 5: a round the host disturbs does not move the median)
 *   BENCH_SLUICE    path to the sluice binary (default dist/sluice; build it with ./compile.sh)
 *   BENCH_SLUICE_ARGS  extra sluice flags for all three sluices, whitespace-separated
 *
 * Setup (2 cores), the pinning of bench/proxy.ts: every proxy under test runs on CPU 0; the
 * apps, the OTLP sink and wrk on CPU 1. Each round starts three sluices afresh (two processes
 * of one binary differ by several percent here, and a process that served earlier rounds
 * carries their heap), each with its own bench/upstream.ts child, and a raw proxy that
 * forwards to the tracing-off sluice's child; they are stopped at the round's end. Tracing
 * is set by the standard variables only (every inherited OTEL_* is cleared):
 *   off         no OTEL_EXPORTER_OTLP_ENDPOINT
 *   sampling 0  OTEL_EXPORTER_OTLP_ENDPOINT=<sink>/s0, OTEL_TRACES_SAMPLER=parentbased_traceidratio, _ARG=0
 *   sampling 1  OTEL_EXPORTER_OTLP_ENDPOINT=<sink>/s1, OTEL_TRACES_SAMPLER=parentbased_traceidratio, _ARG=1
 * wrk sends no traceparent, so every request is a root and the ratio decides. The sink
 * (bench/otlp-sink.ts) reads and discards each export, counting spans by a byte scan.
 *
 * The order of the four configurations rotates every round. After each sampling-1 run the
 * benchmark waits until the sink has been quiet for longer than the batch processor's
 * schedule delay (5s by default), so the spans of that run are all exported (and counted)
 * before the next configuration is measured.
 *
 * Target (issue 3, item 8): tracing on at sampling 1 costs no more than 25% of throughput,
 * i.e. median req/s at sampling 1 >= 0.75 x median req/s with tracing off.
 *
 * A benchmark, not a test: it prints figures, ratios and the verdict and exits 0 unless it
 * could not run. Results go to bench/results/tracing-latest.json.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import {
  BUN, BenchError, CONNECTIONS, LOAD_CPU, PROXY_CPU, RESULTS_DIR, ROOT, SLUICE, type SluiceInstance, type WrkResult,
  cpuSeconds, cpus, ensureWrk, fmt, fmtMs, fmtRatio, freePort, log, median, prepareSluice, printTable, rssMiB, run,
  runBench, seconds, start, startSluice, stopProcess, toJson, waitHttp200, which, wrk,
} from "./lib.ts";

const TARGET_S1_VS_OFF = 0.75;
/** The batch span processor's default OTEL_BSP_SCHEDULE_DELAY (the benchmark clears OTEL_*). */
const SCHEDULE_DELAY_MS = 5000;
const QUIET_MS = SCHEDULE_DELAY_MS + 1000;

type Config = "raw" | "off" | "s0" | "s1";
type SluiceConfig = Exclude<Config, "raw">;
const CONFIGS: Config[] = ["raw", "off", "s0", "s1"];
const LABEL: Record<Config, string> = {
  raw: "raw proxy",
  off: "sluice, tracing off",
  s0: "sluice, tracing on, sampling 0",
  s1: "sluice, tracing on, sampling 1",
};
const SHORT: Record<Config, string> = { raw: "raw", off: "off", s0: "sampling 0", s1: "sampling 1" };

// ---------------------------------------------------------------- sink and /metrics

interface SinkCounts { requests: number; bytes: number; spans: number }
const NO_COUNTS: SinkCounts = { requests: 0, bytes: 0, spans: 0 };

async function sinkStats(sinkUrl: string): Promise<Record<string, SinkCounts>> {
  const r = await fetch(`${sinkUrl}/stats`, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new BenchError(`sink /stats answered ${r.status}`);
  return (await r.json()) as Record<string, SinkCounts>;
}
const sinkCounts = async (sinkUrl: string, prefix: string) => (await sinkStats(sinkUrl))[prefix] ?? NO_COUNTS;

/** Unlabelled samples of a Prometheus text exposition, by metric name. */
async function metrics(adminPort: number): Promise<Record<string, number>> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new BenchError(`/metrics on admin port ${adminPort} answered ${r.status}`);
  const out: Record<string, number> = {};
  for (const line of (await r.text()).split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*) (\S+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

interface TraceCounters { exported: number; dropped: number }
async function traceCounters(adminPort: number): Promise<TraceCounters> {
  const m = await metrics(adminPort);
  return { exported: m.sluice_spans_exported_total ?? Number.NaN, dropped: m.sluice_spans_dropped_total ?? Number.NaN };
}

/** Waits until `count()` has not changed for `quietMs` (at most `maxMs`); returns the last value. */
async function waitQuiet(count: () => Promise<number>, quietMs: number, maxMs: number): Promise<{ value: number; quiet: boolean }> {
  const until = Date.now() + maxMs;
  let last = await count();
  let since = Date.now();
  while (Date.now() < until) {
    await Bun.sleep(250);
    const now = await count();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return { value: last, quiet: true };
    }
  }
  return { value: last, quiet: false };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return true;
    await Bun.sleep(100);
  }
  return false;
}

// ---------------------------------------------------------------- provenance

/** The newest file under src/ that is newer than the binary, if any (a stale dist/sluice). */
function newerSource(binary: string): string | undefined {
  const built = statSync(binary).mtimeMs;
  const walk = (dir: string): string | undefined => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const found = walk(p);
        if (found) return found;
      } else if (statSync(p).mtimeMs > built) {
        return p;
      }
    }
    return undefined;
  };
  return walk(join(ROOT, "src"));
}

async function gitState(): Promise<{ commit: string; dirtySrc: string[] }> {
  const head = await run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], 5000).catch(() => ({ code: 1, out: "", err: "" }));
  const status = await run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"], 5000).catch(() => ({ code: 1, out: "", err: "" }));
  return {
    commit: head.code === 0 ? head.out.trim() : "unknown",
    dirtySrc: status.code === 0 ? status.out.split("\n").filter(Boolean).map((l) => l.trim()) : [],
  };
}

// ---------------------------------------------------------------- main

interface S1Run { round: number; requests: number; sinkSpans: number; sinkRequests: number; sinkBytes: number; exported: number; dropped: number; settled: boolean }

async function main(): Promise<number> {
  const duration = seconds("BENCH_DURATION", 10);
  const warmup = seconds("BENCH_WARMUP", 2);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5) | 0);
  const nproc = availableParallelism();
  const extraSluiceArgs = (process.env.BENCH_SLUICE_ARGS ?? "").split(/\s+/).filter(Boolean);

  if (!which("taskset")) throw new BenchError("taskset is missing (util-linux)");
  if (nproc < 2) throw new BenchError(`needs 2 CPUs for the pinning, found ${nproc}`);
  await ensureWrk();

  const sluiceState = await prepareSluice();
  if (!sluiceState.ok) throw new BenchError(`cannot run sluice: ${sluiceState.reason}`);
  const git = await gitState();
  log(`sluice: ${sluiceState.version} (${SLUICE})`);
  const stale = newerSource(SLUICE);
  if (stale) log(`  warning: ${stale} is newer than ${SLUICE}; run ./compile.sh to measure the current source`);
  if (git.dirtySrc.length) log(`  note: src/ has uncommitted changes (${git.dirtySrc.length} paths); the binary is built from the working tree`);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const upstreamCmd = [BUN, join(import.meta.dir, "upstream.ts")];

  // 1. The OTLP sink, on the load CPU like the apps.
  const sinkPort = await freePort();
  const sinkUrl = `http://127.0.0.1:${sinkPort}`;
  const sink = start("otlp sink", ["taskset", "-c", LOAD_CPU, BUN, join(import.meta.dir, "otlp-sink.ts"), String(sinkPort)]);
  await waitHttp200(`${sinkUrl}/stats`, sink, 20_000, "otlp sink");

  // 2. Each round's processes. Every inherited OTEL_* variable is cleared, then each sluice gets its own.
  const cleared = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith("OTEL_")).map((k) => [k, ""]));
  const otelEnv: Record<SluiceConfig, Record<string, string>> = {
    off: {},
    s0: { OTEL_EXPORTER_OTLP_ENDPOINT: `${sinkUrl}/s0`, OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0" },
    s1: { OTEL_EXPORTER_OTLP_ENDPOINT: `${sinkUrl}/s1`, OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "1" },
  };

  /** Three sluices and the raw proxy, started afresh and checked to trace as configured. */
  async function startRound(first: boolean) {
    const ports = {} as Record<SluiceConfig, { http: number; target: number; admin: number }>;
    const sluices = {} as Record<SluiceConfig, SluiceInstance>;
    for (const c of ["off", "s0", "s1"] as SluiceConfig[]) {
      const [http, target, admin] = await Promise.all([freePort(), freePort(), freePort()]);
      ports[c] = { http, target, admin };
      sluices[c] = await startSluice({
        name: `sluice (${SHORT[c]})`,
        httpPort: http, targetPort: target, adminPort: admin, upstreamCmd, extraArgs: extraSluiceArgs,
        env: { ...cleared, ...otelEnv[c] },
        stderrFile: join(RESULTS_DIR, `tracing-sluice-${c}-stderr.log`),
      });
    }
    for (const c of ["off", "s0", "s1"] as SluiceConfig[]) {
      const built = (await metrics(ports[c].admin)).sluice_tracer_providers_built_total;
      const want = c === "off" ? 0 : 1;
      if (built === undefined) throw new BenchError(`sluice (${SHORT[c]}) has no sluice_tracer_providers_built_total on /metrics: is ${SLUICE} current?`);
      if (built !== want) throw new BenchError(`sluice (${SHORT[c]}) reports ${built} tracer providers built, expected ${want}`);
    }
    if (first) {
      // The readiness request made two spans at sampling 1; they arrive within the schedule delay.
      const arrived = await waitFor(async () => (await sinkCounts(sinkUrl, "/s1")).spans >= 2, SCHEDULE_DELAY_MS + 5000);
      if (!arrived) throw new BenchError(`sluice (sampling 1) exported no spans of its readiness request to the sink within ${SCHEDULE_DELAY_MS + 5000} ms`);
      log(`tracing checked: providers built off 0, sampling 0 1, sampling 1 1; the sink received the sampling-1 readiness spans`);
    }

    // The raw proxy, forwarding to the tracing-off sluice's child.
    const rawPort = await freePort();
    const raw = start("raw proxy", ["taskset", "-c", PROXY_CPU, BUN, join(import.meta.dir, "raw-proxy.ts"), String(rawPort), String(ports.off.target)]);
    await waitHttp200(`http://127.0.0.1:${rawPort}/`, raw, 20_000, "raw proxy");

    const urls: Record<Config, string> = {
      raw: `http://127.0.0.1:${rawPort}/`,
      off: `http://127.0.0.1:${ports.off.http}/`,
      s0: `http://127.0.0.1:${ports.s0.http}/`,
      s1: `http://127.0.0.1:${ports.s1.http}/`,
    };
    const pids: Record<string, number> = {
      "raw proxy": raw.pid,
      "sluice off": sluices.off.proc.pid,
      "sluice s0": sluices.s0.proc.pid,
      "sluice s1": sluices.s1.proc.pid,
      "app (off, raw)": sluices.off.upstreamPid,
      "app (s0)": sluices.s0.upstreamPid,
      "app (s1)": sluices.s1.upstreamPid,
      sink: sink.pid,
    };
    const stop = async () => {
      // In parallel: each sluice's stop sequence takes its shutdown delay.
      await Promise.all([raw, sluices.off.proc, sluices.s0.proc, sluices.s1.proc].map((p) => stopProcess(p, 20_000)));
    };
    return { ports, sluices, raw, urls, pids, stop };
  }

  // 3. Load: the four configurations, rotating the order every round, on fresh processes.
  const s0SinkBefore = (await sinkCounts(sinkUrl, "/s0")).spans;
  const sinkCpuBefore = cpuSeconds(sink.pid);
  log(`load: wrk -t1 -c${CONNECTIONS} -d${duration}s --latency, ${warmup}s warm-up before each, ${rounds} rounds, order rotating, fresh processes each round`);
  const runs: Record<Config, WrkResult[]> = { raw: [], off: [], s0: [], s1: [] };
  const s1Runs: S1Run[] = [];
  const orders: Config[][] = [];
  let rssBefore: Record<string, number> = {};
  let rssAfter: Record<string, number> = {};
  for (let r = 0; r < rounds; r++) {
    const { ports, sluices, raw, urls, pids, stop } = await startRound(r === 0);
    if (r === 0) {
      log("");
      log(`pinning: ${Object.entries(pids).map(([k, pid]) => `${k} pid ${pid} cpus ${cpus(pid)}`).join("; ")}; wrk cpus ${LOAD_CPU}`);
      rssBefore = Object.fromEntries((["off", "s0", "s1"] as SluiceConfig[]).map((c) => [c, rssMiB(sluices[c].proc.pid)]));
      rssBefore.raw = rssMiB(raw.pid);
    }
    const order = CONFIGS.map((_, i) => CONFIGS[(i + r) % CONFIGS.length]!);
    orders.push(order);
    for (const c of order) {
      const sinkBefore = c === "s1" ? await sinkCounts(sinkUrl, "/s1") : NO_COUNTS;
      const countersBefore = c === "s1" ? await traceCounters(ports.s1.admin) : { exported: 0, dropped: 0 };
      const warm = await wrk(urls[c], warmup);
      const res = await wrk(urls[c], duration);
      runs[c].push(res);
      let extra = "";
      if (c === "s1") {
        // Let the batch processor export what is left (a partial batch waits for the schedule delay).
        const settle = await waitQuiet(async () => (await sinkCounts(sinkUrl, "/s1")).spans, QUIET_MS, 30_000);
        const sinkAfter = await sinkCounts(sinkUrl, "/s1");
        const countersAfter = await traceCounters(ports.s1.admin);
        const s: S1Run = {
          round: r + 1,
          requests: warm.requests + res.requests,
          sinkSpans: sinkAfter.spans - sinkBefore.spans,
          sinkRequests: sinkAfter.requests - sinkBefore.requests,
          sinkBytes: sinkAfter.bytes - sinkBefore.bytes,
          exported: countersAfter.exported - countersBefore.exported,
          dropped: countersAfter.dropped - countersBefore.dropped,
          settled: settle.quiet,
        };
        s1Runs.push(s);
        extra = `  spans at sink +${fmt(s.sinkSpans)} in ${s.sinkRequests} exports for ${fmt(s.requests)} requests (warm-up included); exported +${fmt(s.exported)}, dropped +${fmt(s.dropped)}${s.settled ? "" : " (sink not quiet after 30s)"}`;
      }
      const errs = res.errors ? `  errors ${res.errors} (${res.socketErrors}; non-2xx ${res.non2xx})` : "";
      log(`  round ${r + 1} ${SHORT[c].padEnd(10)} ${fmt(res.rps).padStart(8)} req/s  p50 ${fmtMs(res.p50)}  p99 ${fmtMs(res.p99)}${errs}${extra}`);
    }
    if (r === rounds - 1) {
      rssAfter = Object.fromEntries((["off", "s0", "s1"] as SluiceConfig[]).flatMap((c) => [
        [c, rssMiB(sluices[c].proc.pid)],
        [`${c}Peak`, rssMiB(sluices[c].proc.pid, "VmHWM")],
      ]));
      rssAfter.raw = rssMiB(raw.pid);
      rssAfter.rawPeak = rssMiB(raw.pid, "VmHWM");
    }
    await stop();
  }
  const sinkCpu = cpuSeconds(sink.pid) - sinkCpuBefore;
  const s0SinkSpans = (await sinkCounts(sinkUrl, "/s0")).spans - s0SinkBefore;

  // 4. Summary.
  const summary = Object.fromEntries(CONFIGS.map((c) => [c, {
    rps: median(runs[c].map((x) => x.rps)),
    p50: median(runs[c].map((x) => x.p50)),
    p99: median(runs[c].map((x) => x.p99)),
    errors: runs[c].reduce((a, x) => a + x.errors, 0),
  }])) as Record<Config, { rps: number; p50: number; p99: number; errors: number }>;
  const ratio = (c: Config, base: Config, k: "rps" | "p99") => (summary[base][k] > 0 ? summary[c][k] / summary[base][k] : Number.NaN);

  const header = ["configuration", "req/s", "p50", "p99", "errors", "req/s vs raw", "p99 vs raw", "req/s vs off", "p99 vs off"];
  const rows: string[][] = [header];
  for (const c of CONFIGS) {
    const s = summary[c];
    rows.push([
      LABEL[c], fmt(s.rps), fmtMs(s.p50), fmtMs(s.p99), String(s.errors),
      c === "raw" ? "" : fmtRatio(ratio(c, "raw", "rps")),
      c === "raw" ? "" : fmtRatio(ratio(c, "raw", "p99")),
      c === "raw" || c === "off" ? "" : fmtRatio(ratio(c, "off", "rps")),
      c === "raw" || c === "off" ? "" : fmtRatio(ratio(c, "off", "p99")),
    ]);
  }
  log("");
  log(`medians of ${rounds} runs (${duration}s each, ${CONNECTIONS} connections, 1 KiB responses); "off" = sluice with tracing off`);
  printTable(rows);
  // Same-round pairs: how steady the sampling-1 cost is from round to round.
  const perRound = runs.s1.map((x, i) => ({ round: i + 1, s1VsOff: x.rps / runs.off[i]!.rps, s0VsOff: runs.s0[i]!.rps / runs.off[i]!.rps }));
  log(`per round, req/s sampling 1 / off: ${perRound.map((p) => fmtRatio(p.s1VsOff)).join(", ")}; sampling 0 / off: ${perRound.map((p) => fmtRatio(p.s0VsOff)).join(", ")}`);
  log(`RSS before load (round 1) -> after (last round, peak): ${(["off", "s0", "s1"] as SluiceConfig[]).map((c) => `sluice ${SHORT[c]} ${fmt(rssBefore[c]!, 1)} -> ${fmt(rssAfter[c]!, 1)} (${fmt(rssAfter[`${c}Peak`]!, 1)}) MiB`).join("; ")}; raw proxy ${fmt(rssBefore.raw!, 1)} -> ${fmt(rssAfter.raw!, 1)} (${fmt(rssAfter.rawPeak!, 1)}) MiB`);

  // 5. Spans sanity: every request traced at sampling 1 is a server span and a client span.
  const tot = s1Runs.reduce((a, s) => ({
    requests: a.requests + s.requests, sinkSpans: a.sinkSpans + s.sinkSpans, sinkRequests: a.sinkRequests + s.sinkRequests,
    sinkBytes: a.sinkBytes + s.sinkBytes, exported: a.exported + s.exported, dropped: a.dropped + s.dropped,
  }), { requests: 0, sinkSpans: 0, sinkRequests: 0, sinkBytes: 0, exported: 0, dropped: 0 });
  const perRequest = tot.requests > 0 ? tot.sinkSpans / tot.requests : Number.NaN;
  // wrk counts the requests answered; up to CONNECTIONS more per wrk run were cut off in flight.
  const slack = 2 * CONNECTIONS * 2 * s1Runs.length;
  const spansOk = tot.dropped === 0 && tot.sinkSpans === tot.exported && Math.abs(tot.sinkSpans - 2 * tot.requests) <= slack && s0SinkSpans === 0 && s1Runs.every((s) => s.settled);
  log("");
  log(`spans at the sink during the sampling-1 runs: ${fmt(tot.sinkSpans)} in ${fmt(tot.sinkRequests)} exports (${fmt(tot.sinkBytes / 1048576, 1)} MiB of OTLP JSON) for ${fmt(tot.requests)} requests, ${perRequest.toFixed(3)} per request (expected 2: server + client); ` +
    `sluice counted ${fmt(tot.exported)} exported, ${fmt(tot.dropped)} dropped; sampling 0 sent ${fmt(s0SinkSpans)} spans (expected 0); sink CPU ${sinkCpu.toFixed(1)}s over the whole load -> ${spansOk ? "OK" : "CHECK"}`);

  // 6. Verdict.
  const s1VsOff = ratio("s1", "off", "rps");
  const status = !Number.isFinite(s1VsOff) ? "SKIP" : s1VsOff >= TARGET_S1_VS_OFF ? "PASS" : "FAIL";
  const verdictLine = `${status} tracing on at sampling 1: req/s = ${fmtRatio(s1VsOff)} tracing off, a cost of ${fmt((1 - s1VsOff) * 100, 1)}% (target >= ${TARGET_S1_VS_OFF}x, i.e. costs at most 25% of throughput)`;
  log(verdictLine);
  const anyErrors = Object.values(summary).some((s) => s.errors > 0);
  if (anyErrors) log("note: some runs had errors (socket errors or non-2xx); see the per-round lines");

  // 7. JSON.
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const result = {
    date: new Date().toISOString(),
    bun: Bun.version,
    sluice: { binary: SLUICE, version: sluiceState.version, extraArgs: extraSluiceArgs, gitHead: git.commit, uncommittedSrc: git.dirtySrc, staleAgainst: stale ?? null },
    machine: { nproc, cpu: cpuModel, kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim() },
    setup: {
      wrk: `wrk -t1 -c${CONNECTIONS} -d${duration}s --latency`,
      warmupSeconds: warmup,
      rounds,
      orders,
      responseBytes: 1024,
      pinning: { proxies: `cpu ${PROXY_CPU}`, apps: `cpu ${LOAD_CPU}`, sink: `cpu ${LOAD_CPU}`, wrk: `cpu ${LOAD_CPU}` },
      otelEnv: { off: "(OTEL_* cleared)", s0: otelEnv.s0, s1: otelEnv.s1 },
      settleAfterSampling1: `sink quiet for ${QUIET_MS} ms (schedule delay ${SCHEDULE_DELAY_MS} ms + 1s)`,
    },
    median: summary,
    ratios: {
      vsRaw: { off: { rps: ratio("off", "raw", "rps"), p99: ratio("off", "raw", "p99") }, s0: { rps: ratio("s0", "raw", "rps"), p99: ratio("s0", "raw", "p99") }, s1: { rps: ratio("s1", "raw", "rps"), p99: ratio("s1", "raw", "p99") } },
      vsOff: { s0: { rps: ratio("s0", "off", "rps"), p99: ratio("s0", "off", "p99") }, s1: { rps: s1VsOff, p99: ratio("s1", "off", "p99") } },
      perRound,
    },
    target: { s1RpsVsOff: TARGET_S1_VS_OFF },
    verdict: { target: "s1_rps_vs_off", status, value: s1VsOff, limit: TARGET_S1_VS_OFF },
    spans: { ok: spansOk, sampling1: { ...tot, perRequest, runs: s1Runs }, sampling0SinkSpans: s0SinkSpans, sinkCpuSeconds: sinkCpu },
    rssMiB: { beforeLoad: rssBefore, afterLoad: rssAfter },
    runs,
  };
  const out = join(RESULTS_DIR, "tracing-latest.json");
  writeFileSync(out, toJson(result));
  log(`\nwrote ${out}`);
  return 0;
}

await runBench(main);
