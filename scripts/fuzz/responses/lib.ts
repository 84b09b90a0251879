/** @module Shared by the scripts/fuzz/responses probes: starting sluice with app.py, raw requests, parsing what sluice sent. */
import { connect } from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "../../..");
/** Where the app's log, the access records and the list of started sluice PIDs go. */
export const OUT = join(tmpdir(), "sluice-fuzz-responses");
mkdirSync(join(OUT, "pids"), { recursive: true });

/** Every sluice these probes started and have not stopped, for the time limit below. */
const started = new Set<ChildProcess>();
/** Each probe ends within FUZZ_SECONDS (default 900), its sluice killed, whatever it was waiting on. */
const LIMIT_SECONDS = Number(process.env.FUZZ_SECONDS ?? 900);
setTimeout(() => {
  console.log(`stopped at the time limit (FUZZ_SECONDS=${LIMIT_SECONDS}): unfinished`);
  for (const proc of started) proc.kill("SIGKILL");
  process.exit(2);
}, LIMIT_SECONDS * 1000).unref();
export const TARGETS: Record<string, string[]> = {
  binary: [`${ROOT}/dist/sluice`],
  deno: [`${ROOT}/node_modules/.bin/deno`, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", `${ROOT}/src/main.ts`],
};

export interface Parsed {
  raw: string;
  status: number;
  headers: [string, string][];
  body: string;
  problems: string[];
  ms: number;
}

export function header(p: Parsed, name: string): string | undefined {
  return p.headers.find(([n]) => n.toLowerCase() === name)?.[1];
}

/** Parses one response from sluice (connection: close, read to EOF). */
export function parse(raw: string, head = false): Omit<Parsed, "ms"> {
  const problems: string[] = [];
  const end = raw.indexOf("\r\n\r\n");
  if (end === -1) return { raw, status: 0, headers: [], body: "", problems: ["no head end"] };
  const lines = raw.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0]!)?.[1] ?? 0);
  const headers = lines.slice(1).map((l) => {
    const c = l.indexOf(":");
    return [l.slice(0, c).trim(), l.slice(c + 1).trim()] as [string, string];
  });
  const cls = headers.filter(([n]) => n.toLowerCase() === "content-length");
  const tes = headers.filter(([n]) => n.toLowerCase() === "transfer-encoding");
  let rest = raw.slice(end + 4);
  let body = rest;
  if (cls.length > 1) problems.push(`sluice sent ${cls.length} content-length headers`);
  if (cls.length && tes.length) problems.push("sluice sent both CL and TE");
  if (cls.length === 1 && !/^\d+$/.test(cls[0]![1])) problems.push(`sluice sent content-length ${JSON.stringify(cls[0]![1])}`);
  if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    if (rest.length) problems.push(`body bytes after ${status}/${head ? "HEAD" : ""}: ${JSON.stringify(rest.slice(0, 40))}`);
    body = "";
  } else if (tes.length) {
    body = "";
    let at = 0;
    for (;;) {
      const le = rest.indexOf("\r\n", at);
      if (le === -1) { problems.push("chunked body cut"); break; }
      const size = parseInt(rest.slice(at, le), 16);
      if (Number.isNaN(size)) { problems.push("bad chunk"); break; }
      if (size === 0) {
        if (rest.slice(le + 2) !== "\r\n") problems.push(`after last chunk: ${JSON.stringify(rest.slice(le + 2, le + 40))}`);
        break;
      }
      body += rest.slice(le + 2, le + 2 + size);
      at = le + 2 + size + 2;
    }
  } else if (cls.length) {
    const n = Number(cls[0]![1]);
    if (rest.length !== n) problems.push(`CL ${n} but ${rest.length} body bytes`);
    body = rest.slice(0, n);
  }
  return { raw, status, headers, body, problems };
}

/** One request over a fresh connection with connection: close; reads to EOF. */
export function request(port: number, method: string, path: string, opts: { body?: string | undefined; headers?: string; timeoutMs?: number } = {}): Promise<Parsed> {
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: "127.0.0.1", port });
    let finished = false;
    const done = (why?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString("latin1");
      const p = parse(raw, method === "HEAD");
      if (why) p.problems.push(why);
      resolve({ ...p, ms: performance.now() - started });
    };
    const timer = setTimeout(() => done(`HANG: no end within ${opts.timeoutMs ?? 15000}ms`), opts.timeoutMs ?? 15000);
    socket.on("connect", () => {
      const body = opts.body ?? "";
      socket.write(`${method} ${path} HTTP/1.1\r\nhost: app\r\nconnection: close\r\n${opts.headers ?? ""}${body || method === "POST" ? `content-length: ${body.length}\r\n` : ""}\r\n${body}`);
    });
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => done());
    socket.on("error", (e) => done(`socket error ${e.message}`));
  });
}

export interface Sluice {
  proc: ChildProcess;
  http: number;
  admin: number;
  target: number;
  records: Record<string, unknown>[];
  stderr: string[];
  other: string[];
}

export async function startSluice(target: string, base: number, args: string[] = []): Promise<Sluice> {
  const http = base, admin = base + 1, tport = base + 2;
  const proc = spawn(TARGETS[target]![0]!, [...TARGETS[target]!.slice(1), "--http-host", "127.0.0.1", "--http-port", String(http), "--target-port", String(tport),
    "--admin-listen", `127.0.0.1:${admin}`, "--shutdown-delay", "0s", ...(process.env.FULL ? [] : ["--no-compression", "--cache-size", "0"]), "--upstream-timeout", "8s", ...args, "--", "python3", join(import.meta.dir, "app.py")], {
    cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, APP_LOG: join(OUT, `app-${target}.log`) },
  });
  started.add(proc);
  void Bun.write(join(OUT, "pids", String(proc.pid)), target); // for cleanup by PID after an interrupted run
  const s: Sluice = { proc, http, admin, target: tport, records: [], stderr: [], other: [] };
  let buf = "";
  proc.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try { s.records.push(JSON.parse(line)); } catch { s.other.push(line); }
    }
  });
  proc.stderr!.on("data", (d: Buffer) => s.stderr.push(d.toString()));
  const deadline = Date.now() + 30000;
  while (!s.records.some((r) => r.event === "ready")) {
    if (Date.now() > deadline) throw new Error("not ready: " + s.stderr.join(""));
    await Bun.sleep(50);
  }
  return s;
}

export async function metrics(s: Sluice): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${s.admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    out[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

export function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A connection the app closed without saying so (idle, x-close) at `t` (s since the epoch), with the request lines unread then. */
export interface AppClose { t: number; conn: number; why: string; unread: string[] }

export async function appState(s: Sluice): Promise<{ events: { conn: number; why: string; next: string }[]; conns: number; closes: AppClose[] }> {
  return JSON.parse((await request(s.target, "GET", "/state/x")).body);
}

export async function stop(s: Sluice): Promise<number | null> {
  s.proc.kill("SIGTERM");
  const code = await Promise.race([new Promise<number | null>((r) => s.proc.on("exit", (c) => r(c))), Bun.sleep(20000).then(() => -999)]);
  if (code === -999) s.proc.kill("SIGKILL");
  started.delete(s.proc);
  rmSync(join(OUT, "pids", String(s.proc.pid)), { force: true });
  return code;
}
