/**
 * @module Starts sluice for end-to-end tests: the compiled binary or Deno from source, with the
 * fixture app as its child; collects its log records; cleans up every process it started.
 */

import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");
export const BUN = join(ROOT, "node_modules/.bin/bun");
export const DENO = join(ROOT, "node_modules/.bin/deno");
export const BINARY = join(ROOT, "dist/sluice");
export const FIXTURE_APP = [BUN, join(ROOT, "tests/fixtures/app.ts")];

export interface Target {
  name: "binary" | "deno";
  command: string[];
}

/** Every end-to-end test runs against both: the shipped binary and the source under Deno. */
export const TARGETS: Target[] = [
  { name: "binary", command: [BINARY] },
  {
    name: "deno",
    command: [DENO, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", join(ROOT, "src/main.ts")],
  },
];

if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run ./compile.sh first (npm test does)`);

export type LogRecord = Record<string, unknown> & { event?: string; message?: string };

// Cleanup of every process a test starts lives in tests/cleanup.ts, preloaded by `bun test`
// (package.json) so that its hooks apply to every test file.
import { signalNumber } from "../src/runtime/signals.ts";
import { track } from "./cleanup.ts";
import { readLines } from "./read-lines.ts";
export { readLines };
export { track };

/**
 * Ports handed out by freePort come from below Linux's ephemeral range (32768-60999 by
 * default), which the kernel uses for bind(0) and for the local end of every outgoing
 * connection: a port taken from that range can be given to someone else's connect() or
 * bind(0) before sluice binds it, and three bind(0) calls in a row can return the same
 * port. Here each port is handed out once per test process and checked free when it is.
 */
const PORT_RANGE = { first: 20_000, last: 32_000 };
let nextPort = PORT_RANGE.first + ((process.pid * 97) % (PORT_RANGE.last - PORT_RANGE.first));

/** A port that was free a moment ago and that this process has not handed out before. */
export function freePort(): number {
  for (let tries = 0; tries <= PORT_RANGE.last - PORT_RANGE.first; tries++) {
    const port = nextPort;
    nextPort = port === PORT_RANGE.last ? PORT_RANGE.first : port + 1;
    try {
      Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
      return port;
    } catch {
      // taken by someone else: try the next one
    }
  }
  throw new Error(`no free port between ${PORT_RANGE.first} and ${PORT_RANGE.last}`);
}

/**
 * `target` run so that file permissions bind it: as root (tests run as root in CI), under
 * setpriv(1) without the capabilities that override them, so that a mode-000 file is as
 * unreadable to it as to an unprivileged user; as another user, `target` itself.
 */
export function boundByPermissions(target: Target): Target {
  if (process.getuid?.() !== 0) return target;
  return { ...target, command: ["setpriv", "--bounding-set=-dac_override,-dac_read_search", ...target.command] };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "sluice-test-"));
}

/**
 * The fixture app as a child command, run by a shell that first applies `secondStart` (shell
 * code) when an earlier child of the test ran: a rolling restart's new child that differs.
 */
export function appStartingDifferently(secondStart: string): string[] {
  const mark = join(tempDir(), "started");
  return ["sh", "-c", `if [ -e ${mark} ]; then ${secondStart}; fi; touch ${mark}; exec "$0" "$@"`, ...FIXTURE_APP];
}

/**
 * Sends requests for `path`, four at a time, until `done` settles (bounded at 60 s), and asks
 * /readyz between them; returns what every request got: `pid <n>` for a 200 (`pidOf` reads
 * it from the body: the fixture app's /pid is the pid alone), else the status or the error.
 */
export async function loadUntil(
  sluice: Sluice,
  done: Promise<unknown>,
  { path = "/pid", pidOf = (body: string) => body }: { path?: string; pidOf?: (body: string) => string } = {},
): Promise<{ answers: string[]; notReady: number }> {
  let finished = false;
  done.then(() => (finished = true), () => (finished = true));
  const deadline = Date.now() + 60_000;
  const answers: string[] = [];
  let notReady = 0;
  const worker = async (): Promise<void> => {
    while (!finished && Date.now() < deadline) {
      try {
        const response = await fetch(`${sluice.url}${path}`);
        answers.push(response.status === 200 ? `pid ${pidOf(await response.text())}` : `status ${response.status}`);
      } catch (error) {
        answers.push(`error ${error}`);
      }
    }
  };
  const readiness = async (): Promise<void> => {
    while (!finished && Date.now() < deadline) {
      if ((await fetch(`${sluice.adminUrl}/readyz`)).status !== 200) notReady++;
      await Bun.sleep(20);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker(), readiness()]);
  return { answers, notReady };
}

export interface StartOptions {
  /** sluice flags; --http-port, --target-port and --admin-listen are added unless given. */
  args?: string[];
  /** Extra environment for sluice (and so for the child); an undefined value removes an inherited variable. */
  env?: Record<string, string | undefined>;
  /** The child's command; the fixture app by default. */
  child?: string[];
  /** Wait for the "ready" record before returning (default true). */
  waitReady?: boolean;
  /**
   * Ports sluice gets some other way (a --config file, SLUICE_* variables): no flag is added
   * for them, and the returned Sluice uses them.
   */
  ports?: { http?: number; target?: number; admin?: number };
}

export class Sluice {
  readonly records: LogRecord[] = [];
  /** Lines of stdout that are not JSON (the child's own output). */
  readonly otherLines: string[] = [];
  stderr = "";
  readonly exited: Promise<number>;
  #waiters: { match: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];

  constructor(
    readonly proc: ReturnType<typeof Bun.spawn>,
    readonly httpPort: number,
    readonly adminPort: number,
    readonly targetPort: number,
  ) {
    this.exited = proc.exited;
    void readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => this.#line(line));
    void readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => (this.stderr += `${line}\n`));
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  /** The pid of the child, once started. */
  get childPid(): number | undefined {
    return this.records.findLast((r) => r.event === "child.started")?.pid as number | undefined;
  }

  signal(signal: NodeJS.Signals | "SIGPWR" | "SIGSTKFLT"): void {
    // By number: Bun's process.kill knows neither SIGPWR nor SIGSTKFLT by name.
    process.kill(this.proc.pid, signalNumber(signal) || signal);
  }

  /** Resolves with the first record (past or future) matching `event`. */
  waitFor(event: string | ((r: LogRecord) => boolean), timeoutMs = 30_000): Promise<LogRecord> {
    const match = typeof event === "string" ? (r: LogRecord) => r.event === event : event;
    const seen = this.records.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${String(event)}; stderr: ${this.stderr}\nlast records: ${JSON.stringify(this.records.slice(-5))}`));
      }, timeoutMs);
      this.#waiters.push({ match, resolve: (r) => (clearTimeout(timer), resolve(r)) });
    });
  }

  /** Waits for exit (bounded), returns the exit code. */
  async exitCode(timeoutMs = 30_000): Promise<number> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`sluice did not exit within ${timeoutMs}ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  events(event: string): LogRecord[] {
    return this.records.filter((r) => r.event === event);
  }

  #line(line: string): void {
    const record = parseLogRecord(line);
    if (!record) {
      this.otherLines.push(line);
      return;
    }
    this.records.push(record);
    this.#waiters = this.#waiters.filter((w) => (w.match(record) ? (w.resolve(record), false) : true));
  }
}

/**
 * A sluice log record from one line of its stdout, or undefined for any other line (the
 * child's own output). Tracks the child's process group for cleanup when it starts.
 */
export function parseLogRecord(line: string): LogRecord | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof record !== "object" || record === null || !("@timestamp" in record)) return undefined;
  const logRecord = record as LogRecord;
  if (logRecord.event === "child.started" && typeof logRecord.pid === "number") track(logRecord.pid, true);
  return logRecord;
}

/** `env` without its undefined values: how a test removes an inherited variable. */
function definedOnly(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** Starts sluice with the fixture app (or `child`) and, by default, waits until it is ready. */
export async function startSluice(target: Target, options: StartOptions = {}): Promise<Sluice> {
  const args = options.args ?? [];
  const has = (flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));
  const given = options.ports ?? {};
  const httpPort = has("--http-port") ? Number(args[args.indexOf("--http-port") + 1]) : (given.http ?? freePort());
  const targetPort = has("--target-port") ? Number(args[args.indexOf("--target-port") + 1]) : (given.target ?? freePort());
  const adminPort = given.admin ?? freePort();
  const full = [
    ...(has("--http-port") || given.http !== undefined ? [] : ["--http-port", String(httpPort)]),
    ...(has("--target-port") || given.target !== undefined ? [] : ["--target-port", String(targetPort)]),
    ...(has("--admin-listen") || given.admin !== undefined ? [] : ["--admin-listen", `127.0.0.1:${adminPort}`]),
    ...(has("--http-host") ? [] : ["--http-host", "127.0.0.1"]),
    ...args,
    "--",
    ...(options.child ?? FIXTURE_APP),
  ];
  const proc = Bun.spawn([...target.command, ...full], {
    cwd: ROOT,
    // PROBE_PORT lets the fixture app probe sluice's own port when it gets SIGTERM.
    env: definedOnly({ ...process.env, PROBE_PORT: String(httpPort), ...options.env }),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  track(proc.pid);
  const sluice = new Sluice(proc, httpPort, adminPort, targetPort);
  if (options.waitReady ?? true) {
    await Promise.race([
      sluice.waitFor("ready", 60_000),
      sluice.exited.then((code) => {
        throw new Error(`sluice exited with ${code} before ready: ${sluice.stderr}`);
      }),
    ]);
  }
  return sluice;
}

/** Runs sluice to completion with `args` (no child started by the harness); returns code and output. */
export async function runSluice(target: Target, args: string[], env: Record<string, string | undefined> = {}) {
  const proc = Bun.spawn([...target.command, ...args], { cwd: ROOT, env: definedOnly({ ...process.env, ...env }), stdout: "pipe", stderr: "pipe" });
  track(proc.pid);
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout as ReadableStream).text(),
    new Response(proc.stderr as ReadableStream).text(),
  ]);
  return { code, stdout, stderr };
}

/** Sends `request` as written on a new connection and returns everything the server sent until it closed. */
export function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = "";
    const socket = connect({ host: "127.0.0.1", port }, () => socket.write(request));
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no end of the response within 15 s: ${received.slice(0, 300)}`)));
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    socket.on("end", () => resolve(received));
    socket.on("error", reject);
  });
}

/** True when a TCP connection to the port is refused. */
export async function refuses(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return false;
  } catch {
    return true;
  }
}

/** Polls `check` until true or the deadline. */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/** Processes of a process group, from /proc (zombies included, with state Z). */
export function groupProcesses(pgid: number): { pid: number; state: string }[] {
  const found: { pid: number; state: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid) found.push({ pid: Number(entry), state: state! });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * True while a process of group `pgid` runs. One that exited counts no more, though it stays
 * a zombie until init reaps it, which this machine's PID 1 does only every second or two:
 * sluice counts its child's group so too (kill(-pgid, 0), `alive`, counts the zombies).
 */
export function groupRunning(pgid: number): boolean {
  return groupProcesses(pgid).some((p) => p.state !== "Z" && p.state !== "X");
}

/** True when a process (or, with a negative pid, a process group) still exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The samples of sluice's /metrics, by series ("name" or "name{labels}" as printed). */
export async function readMetrics(sluice: Sluice): Promise<Record<string, number>> {
  const text = await (await fetch(`${sluice.adminUrl}/metrics`)).text();
  const samples: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    samples[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return samples;
}

/** Open file descriptors of a process (Linux: the entries of /proc/<pid>/fd). */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident memory of a process in KiB (Linux: VmRSS in /proc/<pid>/status; VmHWM, its peak so far). */
export function rssKiB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!match) throw new Error(`no ${field} for ${pid}`);
  return Number(match[1]);
}

/** The host PIDs of a process's children (every thread's list; a thread that ended meanwhile has none). */
export function childrenOf(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    let list: string;
    try {
      list = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return []; // the thread ended after readdir
      throw error;
    }
    return list.trim().split(" ").filter(Boolean).map(Number);
  });
}

/** The state letter of a process (Z for a zombie), or "" once it is gone. */
function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

export function zombiesUnder(pid: number): number {
  return childrenOf(pid).filter((child) => stateOf(child) === "Z").length;
}
