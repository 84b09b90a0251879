/**
 * Proxy performance benchmark: sluice vs. a ten-line Bun proxy vs. the upstream directly.
 *
 *   node_modules/.bin/bun bench/proxy.ts
 *
 * Environment:
 *   BENCH_DURATION  measured wrk run length (default 10s; "10", "10s", "1m")
 *   BENCH_WARMUP    warm-up run before each measured run (default 2s)
 *   BENCH_ROUNDS    rounds of direct/raw/sluice, each with fresh processes (default 5)
 *   BENCH_IDLE      idle time before reading idle RSS (default 3s)
 *   BENCH_SLUICE    path to the sluice binary (default dist/sluice)
 *   BENCH_SLUICE_ARGS  extra sluice flags, whitespace-separated (e.g. "--access-log=false")
 *
 * Setup (2 cores): the proxy under test runs on CPU 0; the upstream app and wrk on CPU 1.
 * sluice starts bench/upstream.ts as its child on the target port; the direct run hits
 * that port and the raw proxy forwards to it, so all three measure the same upstream.
 * When sluice cannot be run (no dist/sluice and no compile.sh), the upstream is started
 * by the benchmark itself and the sluice rows are skipped. Every round starts sluice and the
 * raw proxy afresh (two processes of one binary differ by several percent here); idle RSS
 * is read in the first round, before any load. The ratios are the median of each round's
 * ratio: the targets of a round run back to back, so the host's drift between rounds (10-30%
 * here) cancels out, where a ratio of medians can pair a fast round of one with a slow
 * round of the other.
 *
 * It is a benchmark, not a test: it prints figures, ratios and a verdict per target and
 * exits 0 unless it could not run. Results go to bench/results/latest.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import {
  BUN, BenchError, CONNECTIONS, LOAD_CPU, PROXY_CPU, RESULTS_DIR, SLUICE, type WrkResult,
  cpus, ensureWrk, fmt, fmtMs, fmtRatio, freePort, log, median, prepareSluice, printTable, rssMiB,
  runBench, seconds, start, startSluice, stopProcess, toJson, waitHttp200, waitTcp, which, wrk,
} from "./lib.ts";

const TARGETS = { rpsVsRaw: 0.85, p99VsRaw: 1.5, idleRssMiB: 40 };

// ---------------------------------------------------------------- main

type Target = "direct" | "raw" | "sluice";

async function main(): Promise<number> {
  const duration = seconds("BENCH_DURATION", 10);
  const warmup = seconds("BENCH_WARMUP", 2);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5) | 0);
  const idle = seconds("BENCH_IDLE", 3);
  const nproc = availableParallelism();
  const extraSluiceArgs = (process.env.BENCH_SLUICE_ARGS ?? "").split(/\s+/).filter(Boolean);

  if (!which("taskset")) throw new BenchError("taskset is missing (util-linux)");
  if (nproc < 2) throw new BenchError(`needs 2 CPUs for the pinning, found ${nproc}`);
  await ensureWrk();

  const sluiceState = await prepareSluice();
  if (!sluiceState.ok) log(`sluice rows skipped: ${sluiceState.reason}`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const upstreamCmd = [BUN, join(import.meta.dir, "upstream.ts")];
  const sluiceStderr = join(RESULTS_DIR, "sluice-stderr.log");

  /**
   * The processes of one round, started afresh: two processes of the same binary differ by
   * several percent here, so each round measures new ones (docs/runtime-notes.md).
   */
  async function startRound() {
    const [httpPort, targetPort, adminPort, rawPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    // 1. The upstream: as sluice's child when sluice runs, otherwise our own.
    let sluice: Subprocess | null = null;
    let upstream: Subprocess | null = null;
    let upstreamPid: number;
    if (sluiceState.ok) {
      const inst = await startSluice({
        httpPort, targetPort, adminPort, upstreamCmd, extraArgs: extraSluiceArgs, stderrFile: sluiceStderr,
      });
      sluice = inst.proc;
      upstreamPid = inst.upstreamPid;
    } else {
      upstream = start("upstream", ["taskset", "-c", LOAD_CPU, ...upstreamCmd], { env: { PORT: String(targetPort) } });
      await waitTcp(targetPort, upstream, 20_000, "bench/upstream.ts");
      upstreamPid = upstream.pid;
    }
    // 2. The raw proxy, to the same upstream.
    const raw = start("raw proxy", ["taskset", "-c", PROXY_CPU, BUN, join(import.meta.dir, "raw-proxy.ts"), String(rawPort), String(targetPort)]);
    await waitHttp200(`http://127.0.0.1:${rawPort}/`, raw, 20_000, "raw proxy");
    const urls: Partial<Record<Target, string>> = { direct: `http://127.0.0.1:${targetPort}/`, raw: `http://127.0.0.1:${rawPort}/` };
    if (sluice) urls.sluice = `http://127.0.0.1:${httpPort}/`;
    const pids: Partial<Record<Target | "upstream", number>> = { upstream: upstreamPid, raw: raw.pid };
    if (sluice) pids.sluice = sluice.pid;
    const stop = async () => {
      for (const p of [raw, sluice, upstream]) if (p) await stopProcess(p, 10_000);
    };
    return { sluice, raw, upstreamPid, urls, pids, stop };
  }

  log(`load: wrk -t1 -c${CONNECTIONS} -d${duration}s --latency, ${warmup}s warm-up before each, ${rounds} rounds, fresh processes each round`);
  const runs: Record<Target, WrkResult[]> = { direct: [], raw: [], sluice: [] };
  let idleRss = { sluice: Number.NaN, raw: Number.NaN, upstream: Number.NaN };
  let afterRss = { sluice: Number.NaN, sluicePeak: Number.NaN, raw: Number.NaN, rawPeak: Number.NaN };
  let sluiceRan = false;
  for (let r = 0; r < rounds; r++) {
    const round = await startRound();
    sluiceRan = round.sluice !== null;
    if (r === 0) {
      log(`pinning: ${Object.entries(round.pids).map(([k, pid]) => `${k} pid ${pid} cpus ${cpus(pid!)}`).join("; ")}; wrk cpus ${LOAD_CPU}`);
      // 3. Idle RSS, after a few seconds with no traffic (a measurement window, not a wait).
      log(`idle ${idle}s before reading VmRSS ...`);
      await Bun.sleep(idle * 1000);
      idleRss = {
        sluice: round.sluice ? rssMiB(round.sluice.pid) : Number.NaN,
        raw: rssMiB(round.raw.pid),
        upstream: rssMiB(round.upstreamPid),
      };
      log(`idle RSS: sluice ${fmt(idleRss.sluice, 1)} MiB, raw proxy ${fmt(idleRss.raw, 1)} MiB, upstream ${fmt(idleRss.upstream, 1)} MiB`);
    }
    // 4. Load: direct, then raw and sluice (their order flips every round).
    const pair: Target[] = r % 2 === 0 ? ["raw", "sluice"] : ["sluice", "raw"];
    for (const t of (["direct", ...pair] as Target[]).filter((t) => round.urls[t])) {
      const url = round.urls[t]!;
      await wrk(url, warmup);
      const res = await wrk(url, duration);
      runs[t].push(res);
      log(`  round ${r + 1} ${t.padEnd(6)} ${fmt(res.rps).padStart(8)} req/s  p50 ${fmtMs(res.p50)}  p99 ${fmtMs(res.p99)}${res.errors ? `  errors ${res.errors} (${res.socketErrors}; non-2xx ${res.non2xx})` : ""}`);
    }
    if (r === rounds - 1) {
      afterRss = {
        sluice: round.sluice ? rssMiB(round.sluice.pid) : Number.NaN,
        sluicePeak: round.sluice ? rssMiB(round.sluice.pid, "VmHWM") : Number.NaN,
        raw: rssMiB(round.raw.pid),
        rawPeak: rssMiB(round.raw.pid, "VmHWM"),
      };
    }
    await round.stop();
  }
  const sluice = sluiceRan;

  // 5. Summary.
  const summary = Object.fromEntries(
    (Object.keys(runs) as Target[]).filter((t) => runs[t].length).map((t) => [t, {
      rps: median(runs[t].map((x) => x.rps)),
      p50: median(runs[t].map((x) => x.p50)),
      p99: median(runs[t].map((x) => x.p99)),
      errors: runs[t].reduce((a, x) => a + x.errors, 0),
    }]),
  ) as Partial<Record<Target, { rps: number; p50: number; p99: number; errors: number }>>;
  /** Each round's t/base ratio (the two ran in the same round, back to back). */
  const roundRatios = (t: Target, base: Target, k: "rps" | "p99") =>
    runs[t].length === runs[base].length ? runs[t].map((x, i) => x[k] / runs[base][i]![k]) : [];
  const ratio = (t: Target, base: Target, k: "rps" | "p99") => {
    const ratios = roundRatios(t, base, k).filter(Number.isFinite);
    return ratios.length > 0 ? median(ratios) : Number.NaN;
  };

  const header = ["target", "req/s", "p50", "p99", "errors", "idle RSS", "req/s vs raw", "p99 vs raw", "req/s vs direct", "p99 vs direct"];
  const rows: string[][] = [header];
  for (const t of ["direct", "raw", "sluice"] as Target[]) {
    const s = summary[t];
    if (!s) {
      rows.push([t, "skipped", "", "", "", "", "", "", "", ""]);
      continue;
    }
    const rss = t === "sluice" ? idleRss.sluice : t === "raw" ? idleRss.raw : idleRss.upstream;
    rows.push([
      t === "direct" ? "direct (upstream)" : t === "raw" ? "raw proxy" : "sluice",
      fmt(s.rps),
      fmtMs(s.p50),
      fmtMs(s.p99),
      String(s.errors),
      `${fmt(rss, 1)} MiB`,
      t === "direct" ? "" : fmtRatio(ratio(t, "raw", "rps")),
      t === "direct" ? "" : fmtRatio(ratio(t, "raw", "p99")),
      t === "direct" ? "" : fmtRatio(ratio(t, "direct", "rps")),
      t === "direct" ? "" : fmtRatio(ratio(t, "direct", "p99")),
    ]);
  }
  log("");
  log(`medians of ${rounds} runs (${duration}s each, ${CONNECTIONS} connections, 1 KiB responses), ratios the median of each round's; idle RSS of the direct row is the upstream's`);
  printTable(rows);
  if (sluice) {
    const perRound = (k: "rps" | "p99") => roundRatios("sluice", "raw", k).map(fmtRatio).join(" ");
    log(`sluice vs raw per round: req/s ${perRound("rps")}; p99 ${perRound("p99")}`);
    log(`after load RSS: sluice ${fmt(afterRss.sluice, 1)} MiB (peak ${fmt(afterRss.sluicePeak, 1)}), raw proxy ${fmt(afterRss.raw, 1)} MiB (peak ${fmt(afterRss.rawPeak, 1)})`);
  }

  // 6. Verdicts.
  type Verdict = { target: string; status: "PASS" | "FAIL" | "SKIP"; value: number; limit: number; line: string };
  const verdicts: Verdict[] = [];
  const verdict = (target: string, value: number, limit: number, ok: (v: number) => boolean, text: string) => {
    const status = !sluice || !Number.isFinite(value) ? "SKIP" : ok(value) ? "PASS" : "FAIL";
    const line = `${status} ${text}`;
    verdicts.push({ target, status, value, limit, line });
  };
  const rpsR = ratio("sluice", "raw", "rps");
  const p99R = ratio("sluice", "raw", "p99");
  verdict("rps_vs_raw", rpsR, TARGETS.rpsVsRaw, (v) => v >= TARGETS.rpsVsRaw, `sluice req/s = ${fmtRatio(rpsR)} raw (target >= ${TARGETS.rpsVsRaw}x)`);
  verdict("p99_vs_raw", p99R, TARGETS.p99VsRaw, (v) => v <= TARGETS.p99VsRaw, `sluice p99 = ${fmtRatio(p99R)} raw (target <= ${TARGETS.p99VsRaw}x)`);
  verdict("idle_rss_mib", idleRss.sluice, TARGETS.idleRssMiB, (v) => v <= TARGETS.idleRssMiB, `sluice idle RSS = ${fmt(idleRss.sluice, 1)} MiB (target <= ${TARGETS.idleRssMiB} MiB)`);
  log("");
  for (const v of verdicts) log(v.line);
  const anyErrors = Object.values(summary).some((s) => s && s.errors > 0);
  if (anyErrors) log("note: some runs had errors (socket errors or non-2xx); see the per-round lines");

  // 7. JSON.
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const result = {
    date: new Date().toISOString(),
    bun: Bun.version,
    sluice: sluiceState.ok ? { binary: SLUICE, version: sluiceState.version, extraArgs: extraSluiceArgs } : { skipped: sluiceState.reason },
    machine: { nproc, cpu: cpuModel, kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim() },
    setup: {
      wrk: `wrk -t1 -c${CONNECTIONS} -d${duration}s --latency`,
      warmupSeconds: warmup,
      rounds,
      responseBytes: 1024,
      pinning: { proxy: `cpu ${PROXY_CPU}`, upstream: `cpu ${LOAD_CPU}`, wrk: `cpu ${LOAD_CPU}` },
    },
    median: summary,
    ratios: {
      how: "median of each round's ratio",
      sluiceVsRawPerRound: { rps: roundRatios("sluice", "raw", "rps"), p99: roundRatios("sluice", "raw", "p99") },
      sluiceVsRaw: { rps: rpsR, p99: p99R },
      sluiceVsDirect: { rps: ratio("sluice", "direct", "rps"), p99: ratio("sluice", "direct", "p99") },
      rawVsDirect: { rps: ratio("raw", "direct", "rps"), p99: ratio("raw", "direct", "p99") },
    },
    rssMiB: { idle: idleRss, afterLoad: afterRss, idleSeconds: idle },
    targets: TARGETS,
    verdicts: verdicts.map(({ target, status, value, limit }) => ({ target, status, value, limit })),
    runs,
  };
  const out = join(RESULTS_DIR, "latest.json");
  writeFileSync(out, toJson(result));
  log(`\nwrote ${out}`);
  return 0;
}

await runBench(main);
