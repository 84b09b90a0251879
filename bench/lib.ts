/**
 * Shared pieces of the benchmarks (bench/proxy.ts, bench/tracing.ts): durations from the
 * environment, formatting, bounded child processes tracked for cleanup, readiness probes,
 * /proc readings, CPU pinning, wrk and the sluice binary.
 *
 * Importing this module installs SIGINT/SIGTERM/exit handlers that stop every process
 * started through start() or run() (and the pids added to extraPids), so a benchmark that
 * is interrupted leaves nothing behind. Wrap the benchmark's main in runBench().
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "..");
export const BUN = process.execPath;
export const RESULTS_DIR = join(import.meta.dir, "results");
export const SLUICE = resolve(ROOT, process.env.BENCH_SLUICE ?? "dist/sluice");
export const CONNECTIONS = 50;
export const PROXY_CPU = "0";
export const LOAD_CPU = "1"; // upstream and wrk

// ---------------------------------------------------------------- small helpers

export function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (!m) throw new Error(`${name}: expected a duration like 10s, got ${JSON.stringify(raw)}`);
  const n = Number(m[1]);
  const s = m[2] === "ms" ? n / 1000 : m[2] === "m" ? n * 60 : n;
  return Math.max(1, Math.round(s));
}

export class BenchError extends Error {}

export const log = (msg: string) => console.log(msg);
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
export const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "-";
export const fmtMs = (ms: number) => (Number.isFinite(ms) ? `${ms.toFixed(2)}ms` : "-");
export const fmtRatio = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}x` : "-");

/** Prints rows as a table: the first row is the header, the first column left-aligned. */
export function printTable(rows: string[][]): void {
  const header = rows[0]!;
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  for (const [i, r] of rows.entries()) {
    log(r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  "));
    if (i === 0) log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

/** JSON.stringify with non-finite numbers as null, two-space indented, newline-terminated. */
export const toJson = (value: unknown) =>
  JSON.stringify(value, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n";

export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new BenchError(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function run(cmd: string[], timeoutMs = 30_000): Promise<{ code: number; out: string; err: string }> {
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

export function which(bin: string): boolean {
  return Bun.which(bin) !== null;
}

/** Ports freePort gave out: bind(0) may hand a just-closed port out again, and two roles of a run would collide. */
const givenPorts = new Set<number>();

export async function freePort(): Promise<number> {
  for (;;) {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    if (givenPorts.has(port)) continue;
    givenPorts.add(port);
    return port;
  }
}

// ---------------------------------------------------------------- process registry

const live = new Set<Subprocess>();
/** Processes started on our behalf (sluice's child): SIGKILLed at cleanup if still alive. */
export const extraPids = new Set<number>();
function track(p: Subprocess) {
  live.add(p);
  void p.exited.then(() => live.delete(p));
}
function untrack(p: Subprocess) {
  live.delete(p);
}
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z /.test(stat); // a zombie is gone for our purposes
  } catch {
    return false;
  }
}

/** Processes stopped on purpose: their exit is not reported as early. */
const stopping = new WeakSet<Subprocess>();

export async function stopProcess(p: Subprocess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  stopping.add(p);
  p.kill("SIGTERM");
  const exited = await Promise.race([p.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
  if (!exited) {
    p.kill("SIGKILL");
    await Promise.race([p.exited, Bun.sleep(2000)]);
  }
}

let cleaning: Promise<void> | undefined;
export const isCleaning = () => cleaning !== undefined;
export function cleanup(): Promise<void> {
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

export function start(name: string, cmd: string[], opts: { env?: Record<string, string>; stdout?: "ignore" | "inherit"; stderrFile?: string } = {}): Subprocess {
  const p = Bun.spawn(cmd, {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdin: "ignore",
    stdout: opts.stdout ?? "ignore",
    stderr: opts.stderrFile ? Bun.file(opts.stderrFile) : "inherit",
  });
  track(p);
  void p.exited.then((code) => {
    if (!cleaning && !stopping.has(p)) console.error(`  ! ${name} (pid ${p.pid}) exited early with ${p.signalCode ?? code}`);
  });
  return p;
}

/**
 * Runs a benchmark's main: prints why it could not run (exit 1), stops every process it
 * started, and exits with main's code.
 */
export async function runBench(main: () => Promise<number>): Promise<never> {
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
}

// ---------------------------------------------------------------- readiness (events, bounded)

export async function waitTcp(port: number, p: Subprocess | null, timeoutMs: number, what: string): Promise<void> {
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

export async function waitHttp200(url: string, p: Subprocess | null, timeoutMs: number, what: string): Promise<void> {
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
export function descendants(pid: number): number[] {
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
export const rssMiB = (pid: number, field = "VmRSS") => {
  const v = statusField(pid, field); // "29876 kB"
  return v ? Number.parseInt(v, 10) / 1024 : Number.NaN;
};
export const cpus = (pid: number) => statusField(pid, "Cpus_allowed_list") ?? "?";

/** CPU time (user + system) a process has used so far, in seconds; NaN when it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields[0] is field 3 (state)
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return Number.NaN;
  }
}

export async function pin(pid: number, cpu: string): Promise<void> {
  // -a: every thread, not only the main one (Bun already runs several).
  const r = await run(["taskset", "-a", "-p", "-c", cpu, String(pid)], 5000);
  if (r.code !== 0) throw new BenchError(`taskset -a -p -c ${cpu} ${pid} failed: ${r.err.trim()}`);
}

// ---------------------------------------------------------------- wrk

export interface WrkResult { rps: number; p50: number; p75: number; p90: number; p99: number; requests: number; errors: number; non2xx: number; socketErrors: string }

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

export function parseWrk(out: string): WrkResult {
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

export async function wrk(url: string, durationS: number): Promise<WrkResult> {
  const cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", `-c${CONNECTIONS}`, `-d${durationS}s`, "--latency", url];
  const r = await run(cmd, (durationS + 30) * 1000);
  if (r.code !== 0) throw new BenchError(`wrk exited ${r.code}: ${r.err.trim()}\n${r.out}`);
  return parseWrk(r.out);
}

export async function ensureWrk(): Promise<void> {
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

export async function prepareSluice(): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
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

export interface SluiceInstance {
  proc: Subprocess;
  /** sluice's child (bench/upstream.ts), pinned to LOAD_CPU. */
  upstreamPid: number;
}

/**
 * Starts sluice pinned to PROXY_CPU with `upstreamCmd` as its child on `targetPort`, waits
 * until its child accepts and sluice answers 200 on `httpPort`, then pins the child (and its
 * descendants) to LOAD_CPU and registers them for cleanup.
 */
export async function startSluice(opts: {
  name?: string;
  httpPort: number;
  targetPort: number;
  adminPort: number;
  upstreamCmd: string[];
  extraArgs?: string[];
  env?: Record<string, string>;
  stderrFile: string;
}): Promise<SluiceInstance> {
  const name = opts.name ?? "sluice";
  const cmd = [
    "taskset", "-c", PROXY_CPU, SLUICE,
    "--http-host", "127.0.0.1",
    "--http-port", String(opts.httpPort),
    "--target-port", String(opts.targetPort),
    "--admin-listen", `127.0.0.1:${opts.adminPort}`,
    "--shutdown-delay", "0",
    ...(opts.extraArgs ?? []),
    "--", ...opts.upstreamCmd,
  ];
  const envNote = opts.env && Object.keys(opts.env).length
    ? Object.entries(opts.env).filter(([, v]) => v !== "").map(([k, v]) => `${k}=${v} `).join("")
    : "";
  log(`starting ${name}: ${envNote}${cmd.slice(3).join(" ")}`);
  const sluice = start(name, cmd, { stdout: "ignore", stderrFile: opts.stderrFile, ...(opts.env ? { env: opts.env } : {}) });
  try {
    await waitTcp(opts.targetPort, sluice, 20_000, `${name}'s child (bench/upstream.ts)`);
    await waitHttp200(`http://127.0.0.1:${opts.httpPort}/`, sluice, 20_000, name);
  } catch (e) {
    const tail = existsSync(opts.stderrFile) ? readFileSync(opts.stderrFile, "utf8").trim().split("\n").slice(-15).join("\n") : "";
    const exited = sluice.exitCode !== null || sluice.signalCode !== null
      ? `\n${name} exited with ${sluice.signalCode ?? sluice.exitCode}; its stdout (where it logs) is discarded: run the command above by hand to see why`
      : "";
    throw new BenchError(`${(e as Error).message}${exited}${tail ? `\n${name} stderr (tail):\n${tail}` : ""}`);
  }
  // Readiness as sluice reports it (informational: the proxy answering 200 is what counts).
  await waitHttp200(`http://127.0.0.1:${opts.adminPort}/readyz`, sluice, 10_000, `${name} /readyz`).catch((e: Error) =>
    log(`  note: ${e.message}`),
  );
  // taskset exec()s sluice, so the Subprocess pid is sluice's own pid.
  const kids = descendants(sluice.pid);
  if (kids.length === 0) throw new BenchError(`${name} (pid ${sluice.pid}) has no child process`);
  for (const k of kids) extraPids.add(k);
  for (const k of kids) await pin(k, LOAD_CPU);
  return { proc: sluice, upstreamPid: kids[0]! };
}
