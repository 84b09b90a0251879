/**
 * Proxy performance benchmark: sluice vs. a ten-line Bun proxy vs. the upstream directly.
 *
 *   node_modules/.bin/bun bench/proxy.ts
 *
 * Environment:
 *   BENCH_DURATION  measured wrk run length (default 10s; "10", "10s", "1m")
 *   BENCH_WARMUP    warm-up run before each measured run (default 2s)
 *   BENCH_ROUNDS    rounds of direct/raw/sluice (default 3)
 *   BENCH_IDLE      idle time before reading idle RSS (default 3s)
 *   BENCH_SLUICE    path to the sluice binary (default dist/sluice)
 *   BENCH_SLUICE_ARGS  extra sluice flags, whitespace-separated (e.g. "--access-log=false")
 *
 * Setup (2 cores): the proxy under test runs on CPU 0; the upstream app and wrk on CPU 1.
 * sluice starts bench/upstream.ts as its child on the target port; the direct run hits
 * that port and the raw proxy forwards to it, so all three measure the same upstream.
 * When sluice cannot be run (no dist/sluice and no compile.sh), the upstream is started
 * by the benchmark itself and the sluice rows are skipped.
 *
 * It is a benchmark, not a test: it prints figures, ratios and a verdict per target and
 * exits 0 unless it could not run. Results go to bench/results/latest.json.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

const ROOT = resolve(import.meta.dir, "..");
const BUN = process.execPath;
const RESULTS_DIR = join(import.meta.dir, "results");
const SLUICE = resolve(ROOT, process.env.BENCH_SLUICE ?? "dist/sluice");
const CONNECTIONS = 50;
const PROXY_CPU = "0";
const LOAD_CPU = "1"; // upstream and wrk

const TARGETS = { rpsVsRaw: 0.85, p99VsRaw: 1.5, idleRssMiB: 40 };

// ---------------------------------------------------------------- small helpers

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new Error(`${name}: expected a duration like 10s, got ${JSON.stringify(raw)}`);
  const n = Number(m[1]);
  const s = m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
  return Math.max(1, Math.round(s));
}

class BenchError extends Error {}

const log = (msg: string) => console.log(msg);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "-";
const fmtMs = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(2)}ms` : "-");
const fmtRatio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}x` : "-");

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new BenchError(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function run(cmd: string[], timeoutMs = 30_000): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  track(p);
  try {
    const [out, err, code] = await deadline(
      Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]),
      timeoutMs,
      cmd.join(" "),
    );
    return { code, out, err };
  } finally {
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    untrack(p);
  }
}

function which(bin: string): boolean {
  return Bun.which(bin) !== null;
}

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

// ---------------------------------------------------------------- process registry

const live = new Set<Subprocess>();
const extraPids = new Set<number>(); // processes started on our behalf (sluice's child)
function track(p: Subprocess) {
  live.add(p);
  void p.exited.then(() => live.delete(p));
}
function untrack(p: Subprocess) {
  live.delete(p);
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat); // a zombie is gone for our purposes
  } catch {
    return false;
  }
}

async function stopProcess(p: Subprocess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill("SIGTERM");
  const exited = await Promise.race([p.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
  if (!exited) {
    p.kill("SIGKILL");
    await Promise.race([p.exited, Bun.sleep(2000)]);
  }
}

let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Stop in reverse start order (wrk, raw proxy, sluice/upstream); sluice stops its child.
    for (const p of [...live].reverse()) await stopProcess(p, 10_000);
    for (const pid of extraPids) {
      if (alive(pid)) {
        try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
      }
    }
  })();
  return cleaning;
}
process.on("exit", () => {
  // Last resort for exit paths that skipped the async cleanup.
  for (const p of live) { try { p.kill("SIGKILL"); } catch { /* gone */ } }
  for (const pid of extraPids) { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } }
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the processes the benchmark started ...`);
    void cleanup().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  });
}

function start(name: string, cmd: string[], opts: { env?: Record<string, string>; stdout?: "ignore" | "inherit"; stderrFile?: string } = {}): Subprocess {
  const p = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: opts.stdout ?? "ignore",
    stderr: opts.stderrFile ? Bun.file(opts.stderrFile) : "inherit",
  });
  track(p);
  void p.exited.then((code) => {
    if (!cleaning) console.error(`  ! ${name} (pid ${p.pid}) exited early with ${p.signalCode ?? code}`);
  });
  return p;
}

// ---------------------------------------------------------------- readiness (events, bounded)

async function waitTcp(port: number, p: Subprocess | null, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (p && (p.exitCode !== null || p.signalCode !== null)) throw new BenchError(`${what} exited before accepting on ${port}`);
    const ok = await new Promise<boolean>((res) => {
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open(s) { s.end(); res(true); },
          data() {},
          connectError() { res(false); },
          error() { res(false); },
        },
      }).catch(() => res(false));
    });
    if (ok) return;
    await Bun.sleep(20);
  }
  throw new BenchError(`${what} did not accept TCP on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

async function waitHttp200(url: string, p: Subprocess | null, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < until) {
    if (p && (p.exitCode !== null || p.signalCode !== null)) throw new BenchError(`${what} exited before answering ${url}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await Bun.sleep(25);
  }
  throw new BenchError(`${what} did not answer 200 on ${url} within ${timeoutMs} ms (last: ${last})`);
}

// ---------------------------------------------------------------- /proc

function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const txt = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
        if (txt) out.push(...txt.split(/\s+/).map(Number));
      } catch { /* thread gone */ }
    }
  } catch { /* process gone */ }
  return out;
}
function descendants(pid: number): number[] {
  const all: number[] = [];
  for (const c of children(pid)) all.push(c, ...descendants(c));
  return all;
}
function statusField(pid: number, field: string): string | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(.+)$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1]?.trim();
  } catch {
    return undefined;
  }
}
const rssMiB = (pid: number, field = "VmRSS") => {
  const v = statusField(pid, field); // "29876 kB"
  return v ? Number.parseInt(v, 10) / 1024 : Number.NaN;
};
const cpus = (pid: number) => statusField(pid, "Cpus_allowed_list") ?? "?";

async function pin(pid: number, cpu: string): Promise<void> {
  // -a: every thread, not only the main one (Bun already runs several).
  const r = await run(["taskset", "-a", "-p", "-c", cpu, String(pid)], 5000);
  if (r.code !== 0) throw new BenchError(`taskset -a -p -c ${cpu} ${pid} failed: ${r.err.trim()}`);
}

// ---------------------------------------------------------------- wrk

interface WrkResult { rps: number; p50: number; p75: number; p90: number; p99: number; requests: number; errors: number; non2xx: number; socketErrors: string }

function toMs(v: string, unit: string): number {
  const n = Number(v);
  switch (unit) {
    case "us": return n / 1000;
    case "ms": return n;
    case "s": return n * 1000;
    case "m": return n * 60_000;
    case "h": return n * 3_600_000;
    default: throw new BenchError(`wrk: unknown time unit ${unit}`);
  }
}

function parseWrk(out: string): WrkResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m").exec(out);
    if (!m) throw new BenchError(`wrk: no ${p}% latency in output:\n${out}`);
    return toMs(m[1]!, m[2]!);
  };
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!rps) throw new BenchError(`wrk: no Requests/sec in output:\n${out}`);
  const reqs = /^\s*(\d+) requests in/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sockErr = sock ? [1, 2, 3, 4].reduce((a, i) => a + Number(sock[i]), 0) : 0;
  return {
    rps: Number(rps[1]),
    p50: pct("50"),
    p75: pct("75"),
    p90: pct("90"),
    p99: pct("99"),
    requests: Number(reqs?.[1] ?? Number.NaN),
    errors: sockErr + non2xx,
    non2xx,
    socketErrors: sock ? sock[0] : "none",
  };
}

async function wrk(url: string, durationS: number): Promise<WrkResult> {
  const cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", `-c${CONNECTIONS}`, `-d${durationS}s`, "--latency", url];
  const r = await run(cmd, (durationS + 30) * 1000);
  if (r.code !== 0) throw new BenchError(`wrk exited ${r.code}: ${r.err.trim()}\n${r.out}`);
  return parseWrk(r.out);
}

async function ensureWrk(): Promise<void> {
  if (which("wrk")) return;
  log("wrk is missing: apt-get install -y wrk");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = () => run(["env", `DEBIAN_FRONTEND=${env.DEBIAN_FRONTEND}`, "apt-get", "install", "-y", "wrk"], 300_000);
  let r = await install();
  if (r.code !== 0) {
    log("install failed; apt-get update, then install again");
    await run(["apt-get", "update"], 300_000);
    r = await install();
  }
  if (r.code !== 0 || !which("wrk")) throw new BenchError(`could not install wrk: ${r.err.trim().split("\n").slice(-3).join(" | ")}`);
}

// ---------------------------------------------------------------- sluice binary

async function prepareSluice(): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  if (!existsSync(SLUICE)) {
    const compile = join(ROOT, "compile.sh");
    if (!existsSync(compile)) return { ok: false, reason: `${SLUICE} is missing and ./compile.sh does not exist yet` };
    log(`${SLUICE} is missing: running ./compile.sh`);
    const r = await run(["bash", compile], 600_000);
    if (r.code !== 0 || !existsSync(SLUICE)) {
      return { ok: false, reason: `./compile.sh failed (exit ${r.code}): ${(r.err || r.out).trim().split("\n").slice(-5).join(" | ")}` };
    }
  }
  const v = await run([SLUICE, "version"], 15_000).catch((e: Error) => ({ code: -1, out: "", err: e.message }));
  if (v.code !== 0) {
    return { ok: false, reason: `\`${SLUICE} version\` exited ${v.code}: ${(v.err || v.out).trim().split("\n").slice(-3).join(" | ")}` };
  }
  return { ok: true, version: v.out.trim() || v.err.trim() };
}

// ---------------------------------------------------------------- main

type Target = "direct" | "raw" | "sluice";

async function main(): Promise<number> {
  const duration = seconds("BENCH_DURATION", 10);
  const warmup = seconds("BENCH_WARMUP", 2);
  const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) | 0);
  const idle = seconds("BENCH_IDLE", 3);
  const nproc = availableParallelism();
  const extraSluiceArgs = (process.env.BENCH_SLUICE_ARGS ?? "").split(/\s+/).filter(Boolean);

  if (!which("taskset")) throw new BenchError("taskset is missing (util-linux)");
  if (nproc < 2) throw new BenchError(`needs 2 CPUs for the pinning, found ${nproc}`);
  await ensureWrk();

  const sluiceState = await prepareSluice();
  if (!sluiceState.ok) log(`sluice rows skipped: ${sluiceState.reason}`);

  const [httpPort, targetPort, adminPort, rawPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const upstreamCmd = [BUN, join(import.meta.dir, "upstream.ts")];

  // 1. The upstream: as sluice's child when sluice runs, otherwise our own.
  let sluice: Subprocess | null = null;
  let upstreamPid: number;
  const sluiceStderr = join(RESULTS_DIR, "sluice-stderr.log");
  if (sluiceState.ok) {
    const cmd = [
      "taskset", "-c", PROXY_CPU, SLUICE,
      "--http-host", "127.0.0.1",
      "--http-port", String(httpPort),
      "--target-port", String(targetPort),
      "--admin-listen", `127.0.0.1:${adminPort}`,
      "--shutdown-delay", "0",
      ...extraSluiceArgs,
      "--", ...upstreamCmd,
    ];
    log(`starting sluice: ${cmd.slice(3).join(" ")}`);
    sluice = start("sluice", cmd, { stdout: "ignore", stderrFile: sluiceStderr });
    try {
      await waitTcp(targetPort, sluice, 20_000, "sluice's child (bench/upstream.ts)");
      await waitHttp200(`http://127.0.0.1:${httpPort}/`, sluice, 20_000, "sluice");
    } catch (e) {
      const tail = existsSync(sluiceStderr) ? readFileSync(sluiceStderr, "utf8").trim().split("\n").slice(-15).join("\n") : "";
      const exited = sluice.exitCode !== null || sluice.signalCode !== null
        ? `\nsluice exited with ${sluice.signalCode ?? sluice.exitCode}; its stdout (where it logs) is discarded: run the command above by hand to see why`
        : "";
      throw new BenchError(`${(e as Error).message}${exited}${tail ? `\nsluice stderr (tail):\n${tail}` : ""}`);
    }
    // Readiness as sluice reports it (informational: the proxy answering 200 is what counts).
    await waitHttp200(`http://127.0.0.1:${adminPort}/readyz`, sluice, 10_000, "sluice /readyz").catch((e: Error) =>
      log(`  note: ${e.message}`),
    );
    // taskset exec()s sluice, so the Subprocess pid is sluice's own pid.
    const kids = descendants(sluice.pid);
    if (kids.length === 0) throw new BenchError(`sluice (pid ${sluice.pid}) has no child process`);
    for (const k of kids) extraPids.add(k);
    for (const k of kids) await pin(k, LOAD_CPU);
    upstreamPid = kids[0]!;
  } else {
    log("starting bench/upstream.ts directly (no sluice)");
    const up = start("upstream", ["taskset", "-c", LOAD_CPU, ...upstreamCmd], { env: { PORT: String(targetPort) } });
    await waitTcp(targetPort, up, 20_000, "bench/upstream.ts");
    upstreamPid = up.pid;
  }

  // 2. The raw proxy.
  const raw = start("raw proxy", ["taskset", "-c", PROXY_CPU, BUN, join(import.meta.dir, "raw-proxy.ts"), String(rawPort), String(targetPort)]);
  await waitHttp200(`http://127.0.0.1:${rawPort}/`, raw, 20_000, "raw proxy");

  const urls: Partial<Record<Target, string>> = {
    direct: `http://127.0.0.1:${targetPort}/`,
    raw: `http://127.0.0.1:${rawPort}/`,
  };
  if (sluice) urls.sluice = `http://127.0.0.1:${httpPort}/`;
  const pids: Partial<Record<Target | "upstream", number>> = { upstream: upstreamPid, raw: raw.pid };
  if (sluice) pids.sluice = sluice.pid;

  log("");
  log(`pinning: ${Object.entries(pids).map(([k, pid]) => `${k} pid ${pid} cpus ${cpus(pid!)}`).join("; ")}; wrk cpus ${LOAD_CPU}`);

  // 3. Idle RSS, after a few seconds with no traffic (a measurement window, not a wait).
  log(`idle ${idle}s before reading VmRSS ...`);
  await Bun.sleep(idle * 1000);
  const idleRss = {
    sluice: sluice ? rssMiB(sluice.pid) : Number.NaN,
    raw: rssMiB(raw.pid),
    upstream: rssMiB(upstreamPid),
  };
  log(`idle RSS: sluice ${fmt(idleRss.sluice, 1)} MiB, raw proxy ${fmt(idleRss.raw, 1)} MiB, upstream ${fmt(idleRss.upstream, 1)} MiB`);

  // 4. Load: rounds of direct + raw/sluice alternating (order flips every round).
  const order: Target[][] = [];
  for (let r = 0; r < rounds; r++) {
    const pair: Target[] = r % 2 === 0 ? ["raw", "sluice"] : ["sluice", "raw"];
    order.push(["direct", ...pair].filter((t) => urls[t as Target]) as Target[]);
  }
  log(`load: wrk -t1 -c${CONNECTIONS} -d${duration}s --latency, ${warmup}s warm-up before each, ${rounds} rounds`);
  const runs: Record<Target, WrkResult[]> = { direct: [], raw: [], sluice: [] };
  for (let r = 0; r < rounds; r++) {
    for (const t of order[r]!) {
      const url = urls[t]!;
      await wrk(url, warmup);
      const res = await wrk(url, duration);
      runs[t].push(res);
      log(`  round ${r + 1} ${t.padEnd(6)} ${fmt(res.rps).padStart(8)} req/s  p50 ${fmtMs(res.p50)}  p99 ${fmtMs(res.p99)}${res.errors ? `  errors ${res.errors} (${res.socketErrors}; non-2xx ${res.non2xx})` : ""}`);
    }
  }
  const afterRss = {
    sluice: sluice ? rssMiB(sluice.pid) : Number.NaN,
    sluicePeak: sluice ? rssMiB(sluice.pid, "VmHWM") : Number.NaN,
    raw: rssMiB(raw.pid),
    rawPeak: rssMiB(raw.pid, "VmHWM"),
  };

  // 5. Summary.
  const summary = Object.fromEntries(
    (Object.keys(runs) as Target[]).filter((t) => runs[t].length).map((t) => [t, {
      rps: median(runs[t].map((x) => x.rps)),
      p50: median(runs[t].map((x) => x.p50)),
      p99: median(runs[t].map((x) => x.p99)),
      errors: runs[t].reduce((a, x) => a + x.errors, 0),
    }]),
  ) as Partial<Record<Target, { rps: number; p50: number; p99: number; errors: number }>>;
  const ratio = (t: Target, base: Target, k: "rps" | "p99") => {
    const a = summary[t]?.[k];
    const b = summary[base]?.[k];
    return a !== undefined && b !== undefined && b > 0 ? a / b : Number.NaN;
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
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  log("");
  log(`medians of ${rounds} runs (${duration}s each, ${CONNECTIONS} connections, 1 KiB responses); idle RSS of the direct row is the upstream's`);
  for (const [i, r] of rows.entries()) {
    log(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  "));
    if (i === 0) log(widths.map((w) => "-".repeat(w)).join("  "));
  }
  if (sluice) log(`after load RSS: sluice ${fmt(afterRss.sluice, 1)} MiB (peak ${fmt(afterRss.sluicePeak, 1)}), raw proxy ${fmt(afterRss.raw, 1)} MiB (peak ${fmt(afterRss.rawPeak, 1)})`);

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
  writeFileSync(out, JSON.stringify(result, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n");
  log(`\nwrote ${out}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  if (!cleaning) console.error(`\nbenchmark could not run: ${e instanceof BenchError ? e.message : (e as Error).stack ?? e}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
