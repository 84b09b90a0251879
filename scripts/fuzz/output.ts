/**
 * @module A bounded, seeded fuzzer of sluice's output streams. Each case runs sluice (the
 * binary or under Deno) with scripts/fuzz/output/writer.py as its child: several processes of
 * its group print checkable lines on stdout and stderr at once (every line names its writer,
 * carries a sequence number and the CRC-32 of its payload), of 0 bytes to 4 MiB, whole or in
 * pieces with pauses, with or without a last newline, with CR, NUL and invalid UTF-8, while
 * clients send requests (access records interleave with the child's lines), and sluice's
 * stdout is a pipe read fast, slowly, paused for a while or closed (EPIPE), a file or
 * /dev/null, and its stderr a pipe, a file or its stdout itself (2>&1). A case ends by the
 * child's own exit (with and without --restart), SIGTERM, SIGQUIT or the child's group
 * killed mid-line. Then it checks what README's "Logs" promises:
 * every child line once, byte-exact, in order per writer, none cut or mixed with another (a
 * line over 64 KiB may come in pieces of at least 64 KiB); a last line without a newline gets
 * one; every record of sluice's a whole JSON or text line, `shutdown complete` last and after
 * every child line; drops only of sluice's own records, counted in `output.dropped` and on
 * /metrics; the exit code; no process left; bounded memory with a slow reader.
 *
 *   bun scripts/fuzz/output.ts [--seed N] [--cases 40] [--seconds 600] [--targets binary,deno]
 *     [--base-port 16000] [--only INDEX] [--keep] [--verbose] [--reader MODE] [--end MODE] [--stderr fifo|file|merged]
 *
 * Each case is cut at 60 s, every process it started killed by PID (sluice) and process
 * group (each start of the child). Ports: base..base+899, three per case. Prints JSON lines
 * ("finding", "note", a last "summary"); exits 1 when it found something.
 */

import { closeSync, constants, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arg, argv } from "./args.ts";
import { mulberry32 } from "./random.ts";

const ROOT = join(import.meta.dir, "../..");
const SEED = Number(arg("seed", "20261206"));
const CASES = Number(arg("cases", "40"));
const DEADLINE = Date.now() + Number(arg("seconds", "600")) * 1000;
const BASE_PORT = Number(arg("base-port", "16000"));
const ONLY = argv.includes("--only") ? Number(arg("only", "0")) : undefined;
const KEEP = argv.includes("--keep");
/** Every case with this stdout reader or this end (the rest of the plan as the seed makes it). */
const ONLY_READER = arg("reader", "") as ReaderMode | "";
const ONLY_END = arg("end", "") as EndMode | "";
const ONLY_STDERR = arg("stderr", "") as Plan["stderrTo"] | "";
const TARGET_NAMES = arg("targets", "binary,deno").split(",").filter(Boolean);
const TARGET_COMMANDS: Record<string, string[]> = {
  binary: [join(ROOT, "dist/sluice")],
  deno: [join(ROOT, "node_modules/.bin/deno"), "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", join(ROOT, "src/main.ts")],
};
const WRITER = join(import.meta.dir, "output/writer.py");
/** What pipeLines holds of a line before passing it on in pieces (src/child-output.ts). */
const MAX_HELD_BYTES = 64 * 1024;
const CASE_MS = 60_000;
/** sluice's growth in RSS over its size once the child started that counts as unbounded. */
const MAX_GROWTH_KIB = 150 * 1024;

type ReaderMode = "fast" | "slow" | "paused" | "epipe" | "file" | "devnull";
type EndMode = "child-exit" | "sigterm" | "sigquit" | "kill-child";

interface WriterSpec {
  index: number;
  fd: 1 | 2;
  inMain: boolean;
  style: "whole" | "batch" | "pieces";
  shared: boolean;
  lines: number;
  maxLen: number;
  kinds: string[];
  finalNewline: boolean;
  graceful: boolean;
  pauseChance: number;
  maxPauseMs: number;
  startDelayMs: number;
  seed: number;
}

interface Plan {
  index: number;
  target: string;
  format: "json" | "text";
  reader: ReaderMode;
  /** sluice's stderr: a FIFO read fast, a file, or sluice's stdout itself (2>&1). */
  stderrTo: "fifo" | "file" | "merged";
  end: EndMode;
  endAfterMs: number;
  restart: "never" | "on-failure" | "always";
  exitCode: number;
  selfExit: boolean;
  flushTimeout: string;
  clients: number;
  writers: WriterSpec[];
}

function makePlan(index: number): Plan {
  const random = mulberry32(SEED * 7919 + index);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (max: number): number => Math.floor(random() * max);
  // Picked even when overridden, so that the rest of the plan is the seed's.
  const pickedReader = pick<ReaderMode>(["fast", "fast", "slow", "paused", "paused", "epipe", "file", "devnull"]);
  const pickedEnd = pick<EndMode>(["child-exit", "child-exit", "sigterm", "sigterm", "sigquit", "kill-child"]);
  const reader = ONLY_READER || pickedReader;
  const end = ONLY_END || pickedEnd;
  const budget = { fast: 24e6, file: 24e6, devnull: 24e6, epipe: 8e6, paused: 16e6, slow: 2.5e6 }[reader];
  const stderrTo = ONLY_STDERR || pick(["fifo", "fifo", "file", "merged"] as const);
  const count = 1 + int(5);
  const fds = Array.from({ length: count }, () => pick([1, 2] as const));
  const writers: WriterSpec[] = fds.map((fd, i) => {
    const shared = fds.filter((f) => f === fd).length > 1;
    // Merged (2>&1), two lines passed on in pieces at once could not be told apart: none over 64 KiB.
    const maxLen = shared ? pick([0, 8, 200, 3900]) : pick([0, 8, 200, 4000, ...(stderrTo === "merged" ? [60_000] : [70_000, 300_000, 4_000_000])]);
    const most = maxLen <= 8 ? 20_000 : maxLen <= 4000 ? 3000 : maxLen <= 70_000 ? 120 : maxLen <= 300_000 ? 24 : 3;
    // Expected bytes of a line are about a third of maxLen: keep the case's total within budget.
    const lines = Math.max(1, Math.min(1 + int(most), Math.floor(budget / count / (maxLen / 3 + 30))));
    // Pauses (after each line and each piece) of about 5 s in all at most: the child's own
    // exit ends some cases, and each case has 60 s.
    const maxPauseMs = pick([1, 20, 200]);
    const pauseChance = Math.min(pick([0, 0, 0.01, 0.2]), 5000 / (lines * 2 * (maxPauseMs / 2)));
    return {
      index: i,
      fd,
      inMain: i === 0 && random() < 0.3,
      style: shared ? pick(["whole", "batch"] as const) : pick(["whole", "batch", "pieces"] as const),
      shared,
      lines,
      maxLen,
      kinds: Array.from({ length: 1 + int(3) }, () => pick(["ascii", "utf8", "binary", "crlf", "cr"])),
      finalNewline: shared || random() < 0.5,
      graceful: random() < 0.5,
      pauseChance,
      maxPauseMs,
      startDelayMs: int(500),
      seed: int(2 ** 31),
    };
  });
  return {
    index,
    target: TARGET_NAMES[index % TARGET_NAMES.length]!,
    format: pick(["json", "text"] as const),
    reader,
    stderrTo,
    end,
    endAfterMs: 300 + int(5000),
    restart: pick(["never", "never", "on-failure", "always"] as const),
    exitCode: pick([0, 3]),
    selfExit: end === "child-exit",
    // Long enough for a slow reader to take everything: a loss at exit is then a finding.
    flushTimeout: pick(["30s", "30s", "2s"]),
    clients: int(4),
    writers,
  };
}

let findings = 0;
let notes = 0;
/** Child lines that arrived whole and were checked, over every case. */
let linesChecked = 0;
/** Findings printed per case: one defect can cut thousands of lines. */
const FINDINGS_PRINTED_PER_CASE = 10;
const printedFor = new Map<number, number>();
function finding(plan: Plan, what: string, detail: Record<string, unknown> = {}): void {
  findings++;
  const printed = (printedFor.get(plan.index) ?? 0) + 1;
  printedFor.set(plan.index, printed);
  if (printed > FINDINGS_PRINTED_PER_CASE) return; // counted in the summary
  console.log(JSON.stringify({ finding: what, case: plan.index, target: plan.target, ...detail, plan: summary(plan) }));
}
function note(plan: Plan, what: string, detail: Record<string, unknown> = {}): void {
  notes++;
  console.log(JSON.stringify({ note: what, case: plan.index, target: plan.target, ...detail }));
}
function summary(plan: Plan): Record<string, unknown> {
  const { writers, ...rest } = plan;
  return { ...rest, writers: writers.map((w) => `${w.fd}/${w.style}${w.shared ? "/shared" : ""}/${w.lines}x${w.maxLen}${w.finalNewline ? "" : "/no-nl"}${w.graceful ? "/graceful" : ""}${w.inMain ? "/main" : ""}`) };
}

/** A FIFO read at the plan's pace: fast, slow, paused a while, or closed midway (EPIPE for its writer). */
class FifoReader {
  readonly chunks: Buffer[] = [];
  readonly writeFd: number;
  readonly ended: Promise<void>;
  /** Read nothing from pauseAt until pausedUntil (performance.now() times). */
  pauseAt = 0;
  pausedUntil = 0;
  chunkBytes = 65536;
  delayMs = 0;
  closeAt = Infinity;
  closed = false;
  #fd: number;

  constructor(path: string) {
    const made = Bun.spawnSync(["mkfifo", path]);
    if (made.exitCode !== 0) throw new Error(`mkfifo ${path} failed`);
    this.#fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    this.writeFd = openSync(path, constants.O_WRONLY);
    this.ended = this.#loop();
  }

  releaseWriteEnd(): void {
    closeSync(this.writeFd);
  }

  /** Stops reading and drops what is buffered: for a case cut short. */
  abandon(): void {
    this.closeAt = 0;
  }

  async #loop(): Promise<void> {
    const buffer = Buffer.alloc(65536);
    try {
      for (;;) {
        const now = performance.now();
        if (now >= this.closeAt) {
          this.closed = true;
          break;
        }
        if (now >= this.pauseAt && now < this.pausedUntil) {
          await Bun.sleep(20);
          continue;
        }
        let n: number;
        try {
          n = readSync(this.#fd, buffer, 0, this.chunkBytes, null);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
          await Bun.sleep(2);
          continue;
        }
        if (n === 0) break;
        this.chunks.push(Buffer.from(buffer.subarray(0, n)));
        if (this.delayMs > 0) await Bun.sleep(this.delayMs);
      }
    } finally {
      closeSync(this.#fd);
    }
  }
}

/** The running case's sluice and its case directory: killed (by PID and by each child's group) if the fuzzer is stopped. */
let running: { pid: number; dir: string } | undefined;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (running) {
      killQuietly(running.pid);
      for (const pgid of incarnations(running.dir)) killQuietly(-pgid);
    }
    process.exit(130);
  });
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/** Processes of a group other than zombies (an orphaned zombie waits for PID 1 here, up to about 2 s). */
function livingInGroup(pgid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function rssKiB(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function incarnations(dir: string): number[] {
  const pids: number[] = [];
  for (let n = 1; existsSync(join(dir, `incarnation-${n}`)); n++) {
    const text = readFileSync(join(dir, `incarnation-${n}`), "utf8");
    if (text !== "") pids.push(Number(text));
  }
  return pids;
}

async function untilTrue(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await Bun.sleep(20);
  }
  return true;
}

async function metricsDropped(adminPort: number): Promise<Record<string, number> | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const dropped: Record<string, number> = {};
    for (const match of text.matchAll(/^sluice_output_dropped_lines_total\{stream="(\w+)"\} (\d+)$/gm)) dropped[match[1]!] = Number(match[2]);
    return dropped;
  } catch {
    return undefined;
  }
}

const TEXT_RECORD = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO|WARNING|ERROR|FATAL) *sluice\.[a-z]+: /;
const HEADER = /^@W(\d+\.\d+):(\d+):(\d+):([0-9a-f]{8})\|/;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

interface Record_ {
  event: string | undefined;
  text: string;
  json?: Record<string, unknown>;
}

/** What one stream held: the child's lines by writer, sluice's records, and where each came. */
interface StreamCheck {
  /** Complete child lines per writer id, in arrival order: seq. */
  seqs: Map<string, number[]>;
  /** Writers whose last line came cut (its writer killed mid-line). */
  partial: Map<string, string>;
  records: Record_[];
  /** Index (in lines) of the last child line and of the shutdown record. */
  lastChildAt: number;
  shutdownAt: number;
  lineCount: number;
  splits: number;
  /** The start of what came after the last newline, if anything did. */
  cutTail?: string;
}

function checkStream(plan: Plan, name: "stdout" | "stderr", bytes: Buffer, complete: boolean): StreamCheck {
  const fd = name === "stdout" ? 1 : 2;
  const fds = plan.stderrTo === "merged" ? [1, 2] : [fd];
  const result: StreamCheck = { seqs: new Map(), partial: new Map(), records: [], lastChildAt: -1, shutdownAt: -1, lineCount: 0, splits: 0 };
  /** A child line over 64 KiB passed on in pieces: what has come of it so far. */
  let pending: { wid: string; seq: number; len: number; crc: number; parts: Buffer[]; got: number; pieces: number[] } | undefined;
  /** A cut header names no writer: whose it is, when only one writer could have been cut on this stream. */
  const cuttable = plan.writers.filter((w) => fds.includes(w.fd) && !w.shared);
  const finish = (wid: string, seq: number) => {
    linesChecked++;
    const seqs = result.seqs.get(wid) ?? [];
    seqs.push(seq);
    result.seqs.set(wid, seqs);
  };
  let start = 0;
  let index = 0;
  for (;;) {
    const nl = bytes.indexOf(10, start);
    if (nl < 0) {
      if (start < bytes.length && complete) result.cutTail = bytes.subarray(start, start + 80).toString("latin1");
      break;
    }
    const line = bytes.subarray(start, nl);
    start = nl + 1;
    index++;
    const head = line.subarray(0, 80).toString("latin1");
    // A child's line, or what a writer killed after its first byte left ("@").
    if (head.startsWith("@W") || head === "@") {
      result.lastChildAt = index;
      if (pending) {
        result.partial.set(pending.wid, `seq ${pending.seq}: ${pending.got} of ${pending.len} bytes, then another child line`);
        pending = undefined;
      }
      const match = HEADER.exec(head);
      if (!match) {
        // Whose, when the cut left the writer's id; else the only writer that could be cut here.
        const owner = /^@W(\d+\.\d+):/.exec(head)?.[1] ?? (cuttable.length === 1 ? `fd${cuttable[0]!.fd}` : cuttable.length > 1 ? "cut-header" : "?");
        result.partial.set(owner, `a cut header: ${JSON.stringify(head.slice(0, 40))}`);
        continue;
      }
      const [whole, wid, seqText, lenText, crcText] = match;
      const body = line.subarray(whole!.length);
      const len = Number(lenText);
      const crc = parseInt(crcText!, 16);
      if (body.length === len) {
        if (Bun.hash.crc32(body) !== crc) finding(plan, "a child line's bytes changed", { stream: name, wid, seq: Number(seqText), len });
        finish(wid!, Number(seqText));
      } else if (body.length > len) {
        finding(plan, "a child line holds more bytes than it was written with (another line's bytes inside)", { stream: name, wid, seq: Number(seqText), len, got: body.length });
      } else {
        pending = { wid: wid!, seq: Number(seqText), len, crc, parts: [Buffer.from(body)], got: body.length, pieces: [line.length] };
      }
      continue;
    }
    const record = parseRecord(plan, line);
    if (record) {
      result.records.push(record);
      if (record.event === "shutdown.complete") result.shutdownAt = index;
      continue;
    }
    if (pending) {
      pending.parts.push(Buffer.from(line));
      pending.got += line.length;
      pending.pieces.push(line.length);
      result.lastChildAt = index;
      if (pending.got >= pending.len) {
        const body = Buffer.concat(pending.parts);
        const { wid, seq, len, crc, pieces } = pending;
        pending = undefined;
        if (body.length !== len || Bun.hash.crc32(body) !== crc) {
          finding(plan, "a child line passed on in pieces does not add up", { stream: name, wid, seq, len, got: body.length });
          continue;
        }
        result.splits++;
        if (pieces.slice(0, -1).some((size) => size < MAX_HELD_BYTES)) {
          finding(plan, "a child line was cut into a piece shorter than 64 KiB", { stream: name, wid, seq, len, pieces });
        }
        finish(wid, seq);
      }
      continue;
    }
    finding(plan, `a line on ${name} that is neither a child's line nor a whole record of sluice's`, {
      line: line.subarray(0, 120).toString("latin1"),
      length: line.length,
    });
  }
  if (pending) result.partial.set(pending.wid, `seq ${pending.seq}: ${pending.got} of ${pending.len} bytes at the end`);
  result.lineCount = index;
  return result;
}

function parseRecord(plan: Plan, line: Buffer): Record_ | undefined {
  let text: string;
  try {
    text = strictUtf8.decode(line);
  } catch {
    return undefined;
  }
  if (plan.format === "json") {
    if (!text.startsWith("{")) return undefined;
    try {
      const json = JSON.parse(text) as Record<string, unknown>;
      if (typeof json !== "object" || json === null || !("@timestamp" in json)) return undefined;
      return { event: json.event as string | undefined, text, json };
    } catch {
      return undefined;
    }
  }
  if (!TEXT_RECORD.test(text)) return undefined;
  // One record, one line: control characters are escaped in text records (README, "Logs").
  // deno-lint-ignore no-control-regex -- control characters are what is looked for
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text)) return undefined;
  const event = text.includes(" sluice.access: ")
    ? "access"
    : text.includes(": shutdown complete")
    ? "shutdown.complete"
    : text.includes(" was not read fast enough")
    ? "output.dropped"
    : "lifecycle";
  return { event, text };
}

/** Lines the output.dropped records of a stream say were dropped. */
function droppedLines(plan: Plan, records: Record_[], stream: string): number {
  let sum = 0;
  for (const record of records) {
    if (record.event !== "output.dropped") continue;
    if (record.json) {
      if (record.json.stream === stream) sum += Number(record.json.lines);
    } else {
      const match = /lines=(\d+)/.exec(record.text);
      if (record.text.includes(`stream=${stream}`) && match) sum += Number(match[1]);
    }
  }
  void plan;
  return sum;
}

interface Progress {
  written: number;
  done: boolean;
}

function progressOf(dir: string): Map<string, Progress> {
  const progress = new Map<string, Progress>();
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith("progress-")) continue;
    const text = readFileSync(join(dir, entry), "utf8").trim();
    progress.set(entry.slice("progress-".length), { written: Number.parseInt(text, 10) || 0, done: text.endsWith("done") });
  }
  return progress;
}

async function runCase(plan: Plan): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-fuzz-output-"));
  writeFileSync(join(dir, "plan.json"), JSON.stringify({ ...plan, dir }));
  const ports = BASE_PORT + (plan.index % 300) * 3;
  const [httpPort, targetPort, adminPort] = [ports, ports + 1, ports + 2];
  const random = mulberry32(SEED * 31 + plan.index);
  // sluice's stdout and stderr.
  let stdoutReader: FifoReader | undefined;
  let stdoutFd: number;
  if (plan.reader === "file") stdoutFd = openSync(join(dir, "stdout"), "w");
  else if (plan.reader === "devnull") stdoutFd = openSync("/dev/null", "w");
  else {
    stdoutReader = new FifoReader(join(dir, "stdout.fifo"));
    stdoutFd = stdoutReader.writeFd;
  }
  const stderrReader = plan.stderrTo === "fifo" ? new FifoReader(join(dir, "stderr.fifo")) : undefined;
  const stderrFd = plan.stderrTo === "merged" ? stdoutFd : stderrReader ? stderrReader.writeFd : openSync(join(dir, "stderr"), "w");
  const args = [
    "--http-host", "127.0.0.1", "--http-port", String(httpPort), "--target-port", String(targetPort),
    "--admin-listen", `127.0.0.1:${adminPort}`, "--shutdown-delay", "0", "--drain-timeout", "2s", "--stop-timeout", "3s",
    "--flush-timeout", plan.flushTimeout, "--log-format", plan.format, "--restart", plan.restart, "--ready-timeout", "20s",
  ];
  const proc = Bun.spawn([...TARGET_COMMANDS[plan.target]!, ...args, "--", "python3", WRITER, join(dir, "plan.json")], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: stdoutFd,
    stderr: stderrFd,
  });
  running = { pid: proc.pid, dir };
  const startedAt = performance.now();
  if (stdoutReader) stdoutReader.releaseWriteEnd();
  else closeSync(stdoutFd);
  if (stderrReader) stderrReader.releaseWriteEnd();
  else if (plan.stderrTo === "file") closeSync(stderrFd);
  let exitCode: number | undefined;
  const exited = proc.exited.then((code) => (exitCode = code));

  // The reader's pace.
  if (stdoutReader) {
    if (plan.reader === "slow") [stdoutReader.chunkBytes, stdoutReader.delayMs] = [4096, 5 + Math.floor(random() * 10)];
    if (plan.reader === "paused") {
      // Half the time the pause takes in the case's end and outlasts the stop's waits: a stop
      // while the child's output waits for stdout.
      const overStop = random() < 0.5;
      // (The stop comes endAfterMs after the child started, itself some 0.3-1 s after the spawn.)
      stdoutReader.pauseAt = performance.now() + (overStop ? Math.max(0, plan.endAfterMs - 1500) : 500 + random() * 3000);
      stdoutReader.pausedUntil = stdoutReader.pauseAt + (overStop ? 4000 : 1000) + random() * 4000;
      if (random() < 0.5) [stdoutReader.chunkBytes, stdoutReader.delayMs] = [4096, 5];
    }
    if (plan.reader === "epipe") stdoutReader.closeAt = performance.now() + 1500 + random() * 4000;
  }

  // Memory, sampled.
  let baseline: number | undefined;
  let peak = 0;
  const sampler = setInterval(() => {
    const rss = rssKiB(proc.pid);
    if (rss === undefined) return;
    if (baseline === undefined && existsSync(join(dir, "incarnation-1"))) baseline = rss;
    peak = Math.max(peak, rss);
  }, 250);

  // Clients, until the case's end comes.
  let loading = true;
  let responded = 0;
  let sent = 0;
  const client = async () => {
    while (loading) {
      sent++;
      try {
        const response = await fetch(`http://127.0.0.1:${httpPort}/`, { signal: AbortSignal.timeout(5000) });
        await response.arrayBuffer();
        responded++;
      } catch {
        await Bun.sleep(50);
      }
    }
  };
  const clients = Array.from({ length: plan.clients }, client);

  const cut = performance.now() + CASE_MS;
  let triggeredAt: number | undefined;
  let droppedOnMetrics: Record<string, number> | undefined;
  let restarted = false;
  const started = await untilTrue(() => existsSync(join(dir, "incarnation-1")) || exitCode !== undefined, 30_000);
  if (!started) finding(plan, "the child never started");
  const willRestart = (code: number) => plan.restart === "always" || (plan.restart === "on-failure" && code !== 0);
  const stopBySignal = async (signal: NodeJS.Signals) => {
    droppedOnMetrics = await metricsDropped(adminPort);
    loading = false;
    triggeredAt = performance.now();
    killQuietly(proc.pid, signal);
  };
  if (exitCode === undefined) {
    if (plan.end === "sigterm" || plan.end === "sigquit") {
      await untilTrue(() => exitCode !== undefined, plan.endAfterMs);
      if (exitCode === undefined) await stopBySignal(plan.end === "sigterm" ? "SIGTERM" : "SIGQUIT");
    } else if (plan.end === "kill-child") {
      await untilTrue(() => exitCode !== undefined, plan.endAfterMs);
      const [first] = incarnations(dir);
      if (first !== undefined) killQuietly(-first, "SIGKILL");
      restarted = willRestart(137);
    } else {
      // The child exits by itself once its writers are done.
      restarted = willRestart(plan.exitCode);
    }
    if (plan.end === "kill-child" || plan.end === "child-exit") {
      if (restarted) {
        const second = await untilTrue(() => existsSync(join(dir, "incarnation-2")) || exitCode !== undefined, cut - performance.now() - 10_000);
        if (!second) finding(plan, "the child was not restarted");
        await Bun.sleep(200 + random() * 1500);
        if (exitCode === undefined) await stopBySignal(random() < 0.8 ? "SIGTERM" : "SIGQUIT");
      } else {
        droppedOnMetrics = await metricsDropped(adminPort);
      }
    }
  }
  const exitedInTime = await untilTrue(() => exitCode !== undefined, Math.max(0, cut - performance.now()));
  loading = false;
  clearInterval(sampler);
  const pgids = incarnations(dir);
  if (!exitedInTime) {
    finding(plan, "sluice did not exit within the case's 60 s", { stdoutRead: stdoutReader?.chunks.reduce((n, c) => n + c.length, 0) });
    killQuietly(proc.pid);
    await exited;
  }
  for (const pgid of pgids) {
    const gone = await untilTrue(() => livingInGroup(pgid).length === 0, 5000);
    if (!gone && exitedInTime) finding(plan, "processes of the child's group left running after sluice exited", { pgid, pids: livingInGroup(pgid) });
    if (groupAlive(pgid)) killQuietly(-pgid);
  }
  running = undefined;
  await Promise.all(clients);
  // What the readers had not taken when sluice exited is still in the pipe: read it to the end.
  if (stdoutReader && !stdoutReader.closed) [stdoutReader.pausedUntil, stdoutReader.delayMs, stdoutReader.chunkBytes] = [0, 0, 65536];
  if (!exitedInTime) stdoutReader?.abandon();
  await Promise.all([stdoutReader?.ended, stderrReader?.ended]);

  const stopMs = triggeredAt === undefined ? undefined : performance.now() - triggeredAt;
  check(plan, dir, {
    exitCode: exitCode!,
    exitedInTime,
    stdout: stdoutReader ? Buffer.concat(stdoutReader.chunks) : plan.reader === "file" ? readFileSync(join(dir, "stdout")) : undefined,
    stderr: stderrReader ? Buffer.concat(stderrReader.chunks) : plan.stderrTo === "file" ? readFileSync(join(dir, "stderr")) : undefined,
    responded,
    sent,
    restarted,
    signalled: triggeredAt !== undefined,
    droppedOnMetrics,
    growthKiB: baseline === undefined ? 0 : peak - baseline,
    elapsedMs: performance.now() - startedAt,
    stopMs,
  });
  if (!KEEP) rmSync(dir, { recursive: true, force: true });
}

interface Outcome {
  exitCode: number;
  exitedInTime: boolean;
  stdout: Buffer | undefined;
  /** undefined when merged into stdout. */
  stderr: Buffer | undefined;
  responded: number;
  sent: number;
  restarted: boolean;
  signalled: boolean;
  droppedOnMetrics: Record<string, number> | undefined;
  growthKiB: number;
  elapsedMs: number;
  stopMs: number | undefined;
}

function check(plan: Plan, dir: string, outcome: Outcome): void {
  if (!outcome.exitedInTime) return;
  const stdoutWhole = plan.reader !== "epipe" && plan.reader !== "devnull";
  const stdout = outcome.stdout && stdoutWhole ? checkStream(plan, "stdout", outcome.stdout, true) : undefined;
  const merged = plan.stderrTo === "merged";
  const stderr = outcome.stderr ? checkStream(plan, "stderr", outcome.stderr, true) : merged ? stdout : undefined;
  if (!merged && stderr && stderr.records.length > 0) finding(plan, "sluice wrote records to stderr", { first: stderr.records[0]!.text.slice(0, 200) });

  // The exit code.
  const lastRecord = stdout?.records.at(-1);
  const code = outcome.exitCode;
  const bySignal = outcome.signalled;
  const expected = bySignal ? [0, 75] : plan.end === "kill-child" ? [137] : [plan.exitCode];
  if (plan.end === "sigquit" && bySignal && code !== 75) finding(plan, "a SIGQUIT stop did not exit 75", { exitCode: code });
  else if (!expected.includes(code)) finding(plan, "unexpected exit code", { exitCode: code, expected });
  if (lastRecord?.json && lastRecord.event === "shutdown.complete" && lastRecord.json.exitCode !== code) {
    finding(plan, "the shutdown record's exitCode is not sluice's", { record: lastRecord.json.exitCode, exitCode: code });
  }
  if (outcome.stopMs !== undefined) {
    const budgetMs = 2000 + 3000 + 500 + Number.parseInt(plan.flushTimeout, 10) * 1000 + 5000;
    if (outcome.stopMs > budgetMs) finding(plan, "the stop took longer than its budget", { stopMs: Math.round(outcome.stopMs), budgetMs });
  }
  if (outcome.growthKiB > MAX_GROWTH_KIB) finding(plan, "sluice's memory grew without bound", { growthMiB: Math.round(outcome.growthKiB / 1024) });

  // sluice's records on stdout: whole lines, the shutdown record last and after every child line.
  const lostAtExit = stdout !== undefined && stdout.shutdownAt < 0;
  if (stdout) {
    if (lostAtExit) {
      // What a slow reader has not taken within --flush-timeout is lost, as documented.
      // Its last line may come cut: the pipe took part of a write when the time was up.
      if ((plan.reader === "slow" || plan.reader === "paused") && plan.flushTimeout === "2s") note(plan, "the end of stdout was lost at exit: the reader was behind at --flush-timeout", { cutTail: stdout.cutTail });
      else finding(plan, "no shutdown complete record on stdout", { last: lastRecord?.text.slice(0, 200), lines: stdout.lineCount });
    } else {
      if (lastRecord?.event !== "shutdown.complete" || stdout.shutdownAt !== stdout.lineCount) {
        finding(plan, "the shutdown record is not the last line of stdout", { shutdownAt: stdout.shutdownAt, lines: stdout.lineCount, lastChildAt: stdout.lastChildAt });
      }
      if (stdout.lastChildAt > stdout.shutdownAt) finding(plan, "a child line came after the shutdown record", { shutdownAt: stdout.shutdownAt, lastChildAt: stdout.lastChildAt });
    }
  }

  if (stdout?.cutTail !== undefined && !lostAtExit) finding(plan, "stdout ends without a newline", { tail: stdout.cutTail });
  if (!merged && stderr?.cutTail !== undefined) finding(plan, "stderr ends without a newline", { tail: stderr.cutTail });

  // Drops: only sluice's own records, counted in output.dropped and on /metrics.
  const allRecords = merged ? (stdout?.records ?? []) : [...(stdout?.records ?? []), ...(stderr?.records ?? [])];
  const droppedOut = droppedLines(plan, allRecords, "stdout");
  const droppedErr = droppedLines(plan, allRecords, "stderr");
  if (droppedErr > 0) finding(plan, "lines of stderr dropped (only sluice's own records may be, and it writes none there)", { droppedErr });
  if (outcome.droppedOnMetrics && stdout && !lostAtExit) {
    for (const [stream, count] of Object.entries(outcome.droppedOnMetrics)) {
      const logged = stream === "stdout" ? droppedOut : droppedErr;
      if (count > logged) finding(plan, "/metrics counts more dropped lines than output.dropped records say", { stream, metrics: count, logged });
    }
  }
  if (stdout && !lostAtExit) {
    const access = stdout.records.filter((r) => r.event === "access").length;
    if (access + droppedOut < outcome.responded) finding(plan, "access records missing", { access, droppedOut, responded: outcome.responded });
    if (access > outcome.sent) finding(plan, "more access records than requests", { access, sent: outcome.sent });
    if (droppedOut > 0) note(plan, "sluice's own records dropped and counted", { droppedOut });
  }

  // The child's lines: every one once, in order per writer, none lost.
  const progress = progressOf(dir);
  const killedMidLine = plan.end !== "child-exit" || outcome.restarted;
  for (const [wid, { written, done }] of progress) {
    const spec = plan.writers[Number(wid.split(".")[1])]!;
    const stream = spec.fd === 1 ? stdout : stderr;
    if (!stream) continue;
    const streamName = spec.fd === 1 ? "stdout" : "stderr";
    const seqs = stream.seqs.get(wid) ?? [];
    const wrong = seqs.findIndex((seq, i) => seq !== i);
    if (wrong >= 0) {
      finding(plan, "a writer's lines out of order, repeated or missing in the middle", { stream: streamName, wid, at: wrong, seqs: seqs.slice(Math.max(0, wrong - 2), wrong + 3) });
      continue;
    }
    const otherStream = spec.fd === 1 ? stderr : stdout;
    if (!merged && otherStream?.seqs.has(wid)) finding(plan, "a writer's lines on the other stream", { wid, stream: streamName });
    const lossAllowed = (spec.fd === 1 || merged) && lostAtExit;
    if (seqs.length < written && !lossAllowed) {
      finding(plan, "child lines lost", { stream: streamName, wid, arrived: seqs.length, written, done, exitCode: outcome.exitCode });
    }
    if (done && seqs.length > written) finding(plan, "more child lines than were written", { wid, arrived: seqs.length, written });
    const partial = stream.partial.get(wid);
    if (partial !== undefined && (!killedMidLine || spec.shared || done)) {
      finding(plan, "a child line arrived cut", { stream: streamName, wid, partial });
    }
  }
  if (stdout && stdout.splits > 0) note(plan, "child lines over 64 KiB passed on in pieces", { splits: stdout.splits });
  if (!merged && stderr && stderr.splits > 0) note(plan, "child lines over 64 KiB passed on in pieces", { splits: stderr.splits, stream: "stderr" });
  if (stderr?.partial.has("?") || stdout?.partial.has("?")) finding(plan, "a cut child line on a shared stream");
  // A cut header naming no writer: fine only if a writer that could be cut there was killed mid-line.
  for (const [name, stream] of [["stdout", stdout], ["stderr", merged ? undefined : stderr]] as const) {
    for (const [owner, partial] of stream?.partial ?? []) {
      if (owner !== "fd1" && owner !== "fd2" && owner !== "cut-header") continue;
      const couldBeCut = [...progress].some(([wid, { done }]) => {
        const spec = plan.writers[Number(wid.split(".")[1])]!;
        return !done && !spec.shared && (merged || `fd${spec.fd}` === owner || owner === "cut-header");
      });
      if (!killedMidLine || !couldBeCut) finding(plan, "a child line arrived cut", { stream: name, partial });
    }
  }
}

const ran: Record<string, number> = {};
let cutShort = false;
const indexes = ONLY !== undefined ? [ONLY] : Array.from({ length: CASES }, (_, i) => i);
for (const index of indexes) {
  if (Date.now() >= DEADLINE) {
    cutShort = true;
    break;
  }
  const plan = makePlan(index);
  const before = findings;
  const startedAt = Date.now();
  await runCase(plan);
  ran[plan.target] = (ran[plan.target] ?? 0) + 1;
  if (argv.includes("--verbose")) console.log(JSON.stringify({ done: index, target: plan.target, ms: Date.now() - startedAt, found: findings - before, linesChecked, plan: summary(plan) }));
}
console.log(JSON.stringify({ summary: { seed: SEED, cases: ran, linesChecked, findings, notes, cutShort } }));
process.exit(findings > 0 ? 1 : 0);
