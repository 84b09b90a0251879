/**
 * @module A bounded, seeded fuzzer of sluice's lifecycle: each case starts sluice (the binary
 * or Deno from source) in front of lifecycle/app.ts with small random stop timings, a
 * --config file and a random child (slow to listen, slow or deaf to SIGTERM, with a
 * grandchild), then fires a random schedule of signals, child kills and crashes, config
 * rewrites and client requests, each anchored to a moment of the lifecycle (exec, listening,
 * ready, a restart's backoff, a reload, the stop's delay, drain and child stop, a rolling
 * restart's begin, new child's start and ready, old child's stop). Per case it
 * checks the README's promises:
 * - sluice exits within its stop budget (the largest any config of the case gave) plus a
 *   margin from the stop's start, within 1 s of a fast-stop signal, with the code the exit-code
 *   table gives for what ended it;
 * - its last output line is `shutdown complete`, and no output holds a stack trace or a
 *   runtime's "Unhandled"/"uncaught"/panic;
 * - nothing of the child's process groups is alive after it exits (/proc);
 * - an accepted connection never gets a reset, an empty or cut answer, a 500, or a 502/503
 *   where the README does not give one;
 * - the child hears its stop signal only with sluice's port refusing and nothing in flight;
 * - SIGUSR2's rolling restarts (with new children that get ready late, never, exit at once
 *   or ignore PORT): no request fails for the switch but those its drain deadline cut (as
 *   many as its record's "aborted"), the old child hears its stop signal with nothing in
 *   flight, every child's group is gone once stopped, and each result (ok, failed,
 *   abandoned, interrupted) agrees with what happened.
 *
 *   bun scripts/fuzz/lifecycle.ts [--seed N] [--cases 150] [--seconds 1800]
 *     [--targets binary,deno] [--base-port 15000] [--only CASE] [--verbose]
 *
 * Ports: each case takes three of base..base+449 (a different triple each case, so that a
 * process a case leaves cannot hold the next one's). Prints JSON lines: "finding", "note",
 * a last "summary"; exits 1 when something was found. See scripts/fuzz/README.md.
 */

import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLines } from "../../tests/read-lines.ts";
import { type Answer, type Exchange, exchangeOn } from "./lifecycle/client.ts";
import { arg, argv } from "./args.ts";
import { mulberry32 } from "./random.ts";

const ROOT = join(import.meta.dir, "../..");
const BUN = join(ROOT, "node_modules/.bin/bun");
const APP = join(import.meta.dir, "lifecycle/app.ts");
const SEED = Number(arg("seed", "20261206"));
const CASES = Number(arg("cases", "150"));
const BASE_PORT = Number(arg("base-port", "15000"));
const ONLY = argv.includes("--only") ? Number(arg("only", "0")) : undefined;
const VERBOSE = argv.includes("--verbose");
const DEADLINE = Date.now() + Number(arg("seconds", "1800")) * 1000;
const TARGET_NAMES = arg("targets", "binary,deno").split(",").filter(Boolean) as TargetName[];
type TargetName = "binary" | "deno";
const TARGET_COMMANDS: Record<TargetName, string[]> = {
  binary: [join(ROOT, "dist/sluice")],
  deno: [join(ROOT, "node_modules/.bin/deno"), "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", join(ROOT, "src/main.ts")],
};
/** Every case is cut here, its processes killed by PID. */
const CASE_LIMIT_MS = 60_000;
/** Slack on the stop budget: the runtime's own exit, a loaded machine. */
const EXIT_MARGIN_MS = 1500;
/** README: a fast stop "exits within a second". */
const FAST_STOP_MS = 1000;
const CLOSE_GRACE_MS = 500;

let findings = 0;
/** Rolling restarts seen, by target and result: the summary tells how much of them a run covered. */
const rolloutTally: Record<string, number> = {};
function out(kind: "finding" | "note" | "summary", fields: Record<string, unknown>): void {
  if (kind === "finding") findings++;
  console.log(JSON.stringify({ [kind]: true, ...fields }));
}

// ---------------------------------------------------------------- the plan of one case

type Anchor =
  | "exec" | "listening" | "child.started" | "ready" | "child.restarting" | "reload" | "stop.begin" | "drain" | "stop-child"
  // A rolling restart's moments: its begin record, its new child's start and ready, the old child's stop signal (heard).
  | "rolling-restart.begin" | "new-child.started" | "new-child.ready" | "old-child.stop";
/** What a rolling restart's new child does (lifecycle/app.ts, LC_NEW_CHILDREN). */
type NewChild = "normal" | "slow-ready" | "never-ready" | "exit" | "ignore-port";
type Action =
  | "SIGHUP" | "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGUSR1" | "SIGUSR2"
  | "kill-child" | "kill-old-child" | "kill-grandchild" | "crash-child" | "config-valid" | "config-invalid";
type RequestKind = "get" | "slow" | "post" | "keepalive" | "stream";

interface Timings {
  "shutdown-delay": number;
  "drain-timeout": number;
  "stop-timeout": number;
  "hold-timeout": number;
  "flush-timeout": number;
  restart: "never" | "on-failure" | "always";
}

interface Plan {
  index: number;
  target: TargetName;
  timings: Timings;
  /** Which of the timings go on the command line (the rest are in the file, so reloads change them). */
  flags: (keyof Timings)[];
  readyPath: boolean;
  readyTimeoutMs: number;
  child: { readyDelayMs: number; onTerm: "exit" | "slow" | "ignore"; termExitMs: number; grandchild: "none" | "sleep" | "stubborn" };
  /** What the rolling restarts' new children do, in order (then normal). */
  newChildren: NewChild[];
  events: { anchor: Anchor; delayMs: number; action: Action }[];
  requests: { anchor: Anchor; delayMs: number; kind: RequestKind; ms: number; bytes: number }[];
  /** After the last anchored event: a SIGTERM, unless sluice already exited. */
  windowMs: number;
}

/** sluice's defaults (README's option table), for a file that stops setting a timing. */
const DEFAULT_TIMINGS: Timings = {
  "shutdown-delay": 5000,
  "drain-timeout": 15_000,
  "stop-timeout": 5000,
  "hold-timeout": 30_000,
  "flush-timeout": 2000,
  restart: "never",
};

function randomTimings(random: () => number): Timings {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  return {
    "shutdown-delay": pick([0, 0, 50, 200, 600, 1200]),
    "drain-timeout": pick([50, 200, 500, 1000, 2000]),
    "stop-timeout": pick([50, 200, 500, 1000]),
    "hold-timeout": pick([50, 300, 1000, 3000]),
    "flush-timeout": pick([200, 500, 1000]),
    restart: pick(["never", "on-failure", "always"] as const),
  };
}

function planCase(index: number, target: TargetName): Plan {
  const random = mulberry32((SEED ^ Math.imul(index + 1, 0x9e3779b1) ^ (target === "deno" ? 0x5bd1e995 : 0)) >>> 0);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const int = (max: number): number => Math.floor(random() * max);
  const timings = randomTimings(random);
  const flags = (Object.keys(timings) as (keyof Timings)[]).filter(() => random() < 0.3);
  // Weighted toward the moments where the lifecycle changes hands; exec's first milliseconds too.
  const anchors: Anchor[] = [
    "exec", "listening", "child.started", "ready", "ready", "ready", "ready", "child.restarting", "child.restarting",
    "reload", "reload", "stop.begin", "stop.begin", "stop.begin", "drain", "drain", "stop-child", "stop-child",
    "rolling-restart.begin", "new-child.started", "new-child.started", "new-child.ready", "new-child.ready", "old-child.stop", "old-child.stop",
  ];
  // SIGUSR1 makes Deno open its debugger (README): only the binary gets it.
  const actions: Action[] = [
    "SIGHUP", "SIGHUP", "SIGTERM", "SIGTERM", "SIGINT", "SIGQUIT", "SIGUSR2", "SIGUSR2", "SIGUSR2", ...(target === "binary" ? ["SIGUSR1" as const] : []),
    "kill-child", "kill-child", "kill-old-child", "kill-grandchild", "crash-child", "crash-child", "config-valid", "config-valid", "config-invalid",
  ];
  const delay = (): number => pick([0, 0, 1, 5, 20, 50, 100, 250, 500, 1000, int(2000)]);
  const events = Array.from({ length: 1 + int(5) }, () => {
    const action = pick(actions);
    // The first milliseconds after exec: only sometimes (a stop there ends sluice by default).
    const anchor = pick(anchors);
    return { anchor, delayMs: delay(), action };
  });
  // Most cases have a rolling restart or more, once sluice serves (what the anchors above seldom give).
  const rollouts = random() < 0.8 ? 1 + int(3) : 0;
  for (let i = 0; i < rollouts; i++) events.push({ anchor: i === 0 ? "ready" : pick(["ready", "new-child.started", "new-child.ready", "old-child.stop"] as const), delayMs: delay(), action: "SIGUSR2" });
  const requests = Array.from({ length: int(10) }, () => ({
    anchor: pick(anchors),
    delayMs: delay(),
    kind: pick(["get", "get", "slow", "slow", "post", "keepalive", "stream"] as const),
    ms: pick([10, 100, 300, 800, 1500]),
    bytes: pick([1, 1000, 70_000, 300_000]),
  }));
  const readyPath = random() < 0.3;
  const child = {
    readyDelayMs: pick([0, 0, 50, 300, 1000]),
    onTerm: pick(["exit", "exit", "slow", "ignore"] as const),
    termExitMs: pick([10, 100, 400, 1500]),
    grandchild: pick(["none", "none", "sleep", "stubborn"] as const),
  };
  const newChildren = Array.from({ length: 3 }, () => pick(["normal", "normal", "normal", "slow-ready", "never-ready", "exit", "ignore-port"] as const));
  return {
    index,
    target,
    timings,
    flags,
    readyPath,
    // Short enough for a never-ready new child to fail within the case; the first child is ready well within it.
    readyTimeoutMs: child.readyDelayMs >= 1000 ? 3000 : pick([2000, 3000]),
    child,
    newChildren,
    events,
    requests,
    windowMs: 1500 + int(2500),
  };
}

function configText(t: Timings, flags: (keyof Timings)[]): string {
  const lines = ["# lifecycle fuzz"];
  for (const key of Object.keys(t) as (keyof Timings)[]) {
    if (flags.includes(key)) continue;
    lines.push(key === "restart" ? `restart = "${t.restart}"` : `${key} = "${t[key]}ms"`);
  }
  return `${lines.join("\n")}\n`;
}

function flagArgs(t: Timings, flags: (keyof Timings)[]): string[] {
  return flags.flatMap((key) => [`--${key}`, key === "restart" ? t.restart : `${t[key]}ms`]);
}

/** The stop budget of a configuration (README, "Sizing the timeouts"). */
function budgetOf(t: Timings): number {
  return t["shutdown-delay"] + t["drain-timeout"] + CLOSE_GRACE_MS + t["stop-timeout"] + t["flush-timeout"];
}

// ---------------------------------------------------------------- running one case

interface Seen {
  at: number;
  record: Record<string, unknown>;
}

interface RequestRecord {
  kind: RequestKind;
  sentAt: number;
  answers: Answer[];
  answeredAt: number[];
  /** When each request on the connection was written (the first: once connected). */
  writtenAt: number[];
  expected: string[];
}

interface ConfigWrite {
  at: number;
  valid: boolean;
  /** The --restart policy a valid file sets (the default when it sets none). */
  restart?: Timings["restart"];
}

interface SentSignal {
  signal: string;
  at: number;
  /** Whether sluice had logged "listening" by then (its handlers were installed). */
  afterListening: boolean;
}

const PORT_SLOTS = 150;

/** The case running now: what to kill when the fuzzer itself is stopped. */
let running: { sluice: number; recordFile: string; dir: string } | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (running) {
      tryKill(running.sluice, "SIGKILL");
      for (const child of readChildRecords(running.recordFile).filter((r) => r.event === "start")) {
        tryKill(-(child.pid as number), "SIGKILL");
        if (child.grandchild) tryKill(child.grandchild as number, "SIGKILL");
      }
      rmSync(running.dir, { recursive: true, force: true });
    }
    out("summary", { seed: SEED, cases: ran, byTarget, rollingRestarts: rolloutTally, findings, cutShort: true, stoppedBy: signal });
    process.exit(findings > 0 ? 1 : 0);
  });
}

async function runCase(plan: Plan): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-lifecycle-"));
  const slot = plan.index % PORT_SLOTS;
  const httpPort = BASE_PORT + slot * 3;
  const targetPort = httpPort + 1;
  const adminPort = httpPort + 2;
  const configFile = join(dir, "sluice.toml");
  const recordFile = join(dir, "child.jsonl");
  writeFileSync(configFile, configText(plan.timings, plan.flags));
  const budgets = [budgetOf(plan.timings)];
  /** Every configuration the case gave (the stop timeouts a rolling restart may use). */
  const budgetTimings: Timings[] = [plan.timings];
  const random = mulberry32(plan.index * 7919 + SEED);

  const args = [
    ...TARGET_COMMANDS[plan.target],
    "--config", configFile,
    "--http-host", "127.0.0.1", "--http-port", String(httpPort), "--target-port", String(targetPort),
    "--admin-listen", `127.0.0.1:${adminPort}`, "--no-compression", "--ready-timeout", `${plan.readyTimeoutMs}ms`,
    ...(plan.readyPath ? ["--ready-path", "/ready"] : []),
    ...flagArgs(plan.timings, plan.flags),
    "--", BUN, APP,
  ];
  const started = performance.now();
  /** The child's records are in wall-clock ms: this is `started` in that clock. */
  const startedWall = Date.now();
  const proc = Bun.spawn(args, {
    cwd: ROOT,
    env: {
      ...process.env,
      PROBE_PORT: String(httpPort),
      LC_READY_DELAY_MS: String(plan.child.readyDelayMs),
      LC_ON_TERM: plan.child.onTerm,
      LC_TERM_EXIT_MS: String(plan.child.termExitMs),
      LC_GRANDCHILD: plan.child.grandchild,
      LC_RECORD: recordFile,
      LC_NEW_CHILDREN: plan.newChildren.join(","),
      LC_TARGET_PORT: String(targetPort),
    },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running = { sluice: proc.pid, recordFile, dir };
  const now = (): number => performance.now() - started;
  const seen: Seen[] = [];
  const stdoutLines: string[] = [];
  let stderr = "";
  const anchorWaiters: { anchor: Anchor; run: () => void }[] = [];
  const anchorAt = new Map<Anchor, number>();
  let exitedAt: number | undefined;
  const fire = (anchor: Anchor): void => {
    if (anchorAt.has(anchor)) return;
    anchorAt.set(anchor, now());
    for (const waiter of anchorWaiters.filter((w) => w.anchor === anchor)) waiter.run();
  };
  /** The rolling restart under way (its old child, and its new one once started). */
  let rollout: { oldPid: number; newPid?: number } | undefined;
  /** The child requests go to now, as far as the records tell (crash-child asks it straight). */
  let serving: { pid: number; port: number } | undefined;
  /** Findings made while sluice runs (a retired child's group left alive). */
  const midRun: { what: string; detail: Record<string, unknown> }[] = [];
  const groupChecks: Promise<void>[] = [];
  const checkGroupGone = (pid: number, afterMs: number, why: string): void => {
    groupChecks.push(sleepUnless(afterMs, exited).then(async () => {
      if (exitedAt !== undefined) return; // the check after the exit covers it
      const left = await leftoverProcesses([pid]);
      if (left.length > 0 && exitedAt === undefined) midRun.push({ what: `the process group of a child ${why} is alive while sluice runs`, detail: { pid, left } });
    }));
  };
  const stdoutDone = readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
    stdoutLines.push(line);
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line);
    } catch {
      return;
    }
    seen.push({ at: now(), record });
    const event = record.event;
    if (event === "listening" || event === "child.started" || event === "ready" || event === "child.restarting" || event === "stop.begin") fire(event);
    if (event === "reload") fire("reload");
    if (event === "stop.phase" && record.step === "close-listener") fire("drain");
    if (event === "stop.phase" && record.step === "drain") fire("stop-child");
    if (event === "rolling-restart.begin") {
      rollout = { oldPid: record.pid as number };
      fire("rolling-restart.begin");
    }
    if (event === "child.started") {
      if (rollout && rollout.newPid === undefined) {
        rollout.newPid = record.pid as number;
        fire("new-child.started");
      } else serving = { pid: record.pid as number, port: record.port as number };
    }
    if (event === "child.ready" && rollout && record.pid === rollout.newPid) {
      const port = seen.findLast((s) => s.record.event === "child.started" && s.record.pid === record.pid)?.record.port as number;
      serving = { pid: record.pid as number, port };
      fire("new-child.ready");
    }
    if (event === "rolling-restart" && record.result !== "skipped") {
      rollout = undefined;
      // Retired: its group is gone by now (SIGKILLed at the latest); a failed new child is stopped after the record.
      if (record.result === "ok") checkGroupGone(record.pid as number, 0, "retired by a rolling restart");
      if (record.result === "failed" && typeof record.newPid === "number") {
        checkGroupGone(record.newPid, Math.max(...budgetTimings.map((t) => t["stop-timeout"])) + 1500, "a failed rolling restart started");
      }
    }
  });
  const stderrDone = readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => (stderr += `${line}\n`));
  const exited = proc.exited.then((code) => {
    exitedAt = now();
    return code;
  });
  fire("exec");
  // The old child's stop signal in a rolling restart: from its own record (it writes one as it hears it).
  const watchTerms = (async () => {
    while (exitedAt === undefined) {
      await sleepUnless(10, exited);
      const oldPid = rollout?.oldPid;
      if (oldPid !== undefined && readChildRecords(recordFile).some((r) => r.event === "term" && r.pid === oldPid)) fire("old-child.stop");
    }
  })();

  const signals: SentSignal[] = [];
  const configWrites: ConfigWrite[] = [];
  const kills: { at: number; what: string; pid: number }[] = [];
  const childPids = (): { pid: number; grandchild: number | null }[] => readChildRecords(recordFile).filter((r) => r.event === "start") as never;
  const currentChild = (): number | undefined => seen.findLast((s) => s.record.event === "child.started")?.record.pid as number | undefined;

  const act = async (action: Action): Promise<void> => {
    if (exitedAt !== undefined) return;
    switch (action) {
      case "kill-child": {
        const pid = currentChild();
        if (pid) kills.push({ at: now(), what: "child", pid }), tryKill(pid, "SIGKILL");
        return;
      }
      case "kill-old-child": {
        // The oldest child still running: in a rolling restart, the one being replaced.
        const exitedPids = new Set(seen.filter((s) => s.record.event === "child.exited").map((s) => s.record.pid));
        const pid = seen.find((s) => s.record.event === "child.started" && !exitedPids.has(s.record.pid))?.record.pid as number | undefined;
        if (pid) kills.push({ at: now(), what: "child", pid }), tryKill(pid, "SIGKILL");
        return;
      }
      case "kill-grandchild": {
        const grandchild = childPids().at(-1)?.grandchild;
        if (grandchild) kills.push({ at: now(), what: "grandchild", pid: grandchild }), tryKill(grandchild, "SIGKILL");
        return;
      }
      case "crash-child": {
        kills.push({ at: now(), what: "crash", pid: serving?.pid ?? 0 });
        // Straight to the port of the child requests go to: it exits 3 without answering.
        await exchangeOn(serving?.port ?? targetPort, [{ method: "GET", path: "/crash" }], 0, 2000);
        return;
      }
      case "config-valid": {
        const timings = randomTimings(random);
        budgets.push(budgetOf(timings));
        budgetTimings.push(timings);
        configWrites.push({ at: now(), valid: true, restart: timings.restart });
        // Whole, by rename: a reader never sees half of it.
        writeFileSync(`${configFile}.new`, configText(timings, plan.flags));
        renameSync(`${configFile}.new`, configFile);
        return;
      }
      case "config-invalid": {
        const badValue = random() < 0.5;
        // A value a flag overrides is never read: the file is then valid, and every timing it
        // no longer sets is back to its default (README's precedence).
        const shadowed = badValue && plan.flags.includes("drain-timeout");
        if (shadowed) {
          const flagged = Object.fromEntries(plan.flags.map((key) => [key, plan.timings[key]]));
          budgets.push(budgetOf({ ...DEFAULT_TIMINGS, ...flagged }));
          budgetTimings.push({ ...DEFAULT_TIMINGS, ...flagged });
        }
        configWrites.push({ at: now(), valid: shadowed, ...(shadowed && { restart: "never" as const }) });
        writeFileSync(configFile, badValue ? 'drain-timeout = "3x"\n' : "drian-timeout = 5\n");
        return;
      }
      default:
        signals.push({ signal: action, at: now(), afterListening: anchorAt.has("listening") });
        tryKill(proc.pid, action);
    }
  };

  const pending: Promise<unknown>[] = [];
  const requests: RequestRecord[] = [];
  const schedule = (anchor: Anchor, delayMs: number, run: () => Promise<unknown> | void): void => {
    const go = (): void => {
      pending.push(new Promise<void>((resolve) => setTimeout(() => void Promise.resolve(run()).finally(resolve), delayMs)));
    };
    if (anchorAt.has(anchor)) go();
    else anchorWaiters.push({ anchor, run: go });
  };
  for (const event of plan.events) schedule(event.anchor, event.delayMs, () => act(event.action));
  for (const request of plan.requests) {
    schedule(request.anchor, request.delayMs, async () => {
      if (exitedAt !== undefined) return;
      const [exchanges, expected] = requestFor(request);
      const record: RequestRecord = { kind: request.kind, sentAt: now(), answers: [], answeredAt: [], writtenAt: [], expected };
      requests.push(record);
      const result = await exchangeOn(httpPort, exchanges, Math.floor(random() * 50), 30_000);
      record.answers = result.answers;
      record.answeredAt = result.at.map((at) => at - started);
      record.writtenAt = result.sentAt.map((at) => at - started);
    });
  }

  // Requests throughout, one after another, besides the anchored ones (bounded in count).
  const steady = (async () => {
    await sleep(Math.floor(random() * 200));
    for (let i = 0; i < 200 && exitedAt === undefined; i++) {
      const kind = (["get", "get", "slow", "post", "keepalive", "stream"] as const)[Math.floor(random() * 6)]!;
      const request = { anchor: "exec" as const, delayMs: 0, kind, ms: [10, 100, 300, 800][Math.floor(random() * 4)]!, bytes: [1, 1000, 70_000][Math.floor(random() * 3)]! };
      const [exchanges, expected] = requestFor(request);
      const record: RequestRecord = { kind, sentAt: now(), answers: [], answeredAt: [], writtenAt: [], expected };
      requests.push(record);
      const go = exchangeOn(httpPort, exchanges, Math.floor(random() * 50), 30_000).then((result) => {
        record.answers = result.answers;
        record.answeredAt = result.at.map((at) => at - started);
        record.writtenAt = result.sentAt.map((at) => at - started);
      });
      // Sometimes two at once; mostly a short pause between.
      if (random() < 0.7) await go;
      await sleep(Math.floor(random() * 120));
    }
  })();
  pending.push(steady);

  // The schedule's window, then a SIGTERM if nothing ended sluice; the case is cut at CASE_LIMIT_MS.
  const windowEnd = sleepUnless(plan.windowMs + 2000, exited);
  await windowEnd;
  if (exitedAt === undefined && !anchorAt.has("stop.begin")) {
    signals.push({ signal: "SIGTERM", at: now(), afterListening: anchorAt.has("listening") });
    tryKill(proc.pid, "SIGTERM");
  }
  let cut = false;
  const code = await Promise.race([exited, sleep(CASE_LIMIT_MS - now()).then(() => undefined)]);
  if (code === undefined) {
    cut = true;
    tryKill(proc.pid, "SIGKILL");
  }
  const exitCode = code ?? (await exited);
  await Promise.race([Promise.all([stdoutDone, stderrDone]), sleep(2000)]);
  // The requests still running are bounded by their own timeouts.
  await Promise.race([Promise.all(pending), sleep(31_000)]);
  await Promise.all([watchTerms, ...groupChecks]);

  const children = childPids();
  const leftovers = await leftoverProcesses(children.map((c) => c.pid));
  for (const pid of leftovers.map((l) => l.pid)) tryKill(pid, "SIGKILL");

  check({
    plan, exitCode, exitedAt: exitedAt!, cut, seen, stdoutLines, stderr, signals, configWrites, kills, requests,
    budget: Math.max(...budgets), leftovers, childRecords: readChildRecords(recordFile), anchorAt, startedWall, midRun,
  });
  rmSync(dir, { recursive: true, force: true });
  running = undefined;
}

function requestFor(request: Plan["requests"][number]): [Exchange[], string[]] {
  switch (request.kind) {
    case "get":
      return [[{ method: "GET", path: "/" }], ["hello\n"]];
    case "slow":
      return [[{ method: "GET", path: `/slow?ms=${request.ms}` }], [`slow ${request.ms}\n`]];
    case "post":
      return [[{ method: "POST", path: "/echo", body: new Uint8Array(request.bytes).fill(97) }], [`len=${request.bytes}\n`]];
    case "stream": {
      // About request.ms in all, in five parts.
      const parts = 5;
      return [[{ method: "GET", path: `/stream?n=${parts}&gap=${Math.round(request.ms / parts)}` }], [Array.from({ length: parts }, (_, i) => `part ${i}\n`).join("")]];
    }
    case "keepalive":
      return [
        [{ method: "GET", path: "/" }, { method: "GET", path: `/slow?ms=${request.ms}` }, { method: "GET", path: "/" }],
        ["hello\n", `slow ${request.ms}\n`, "hello\n"],
      ];
  }
}

// ---------------------------------------------------------------- the checks

interface Outcome {
  plan: Plan;
  exitCode: number;
  exitedAt: number;
  cut: boolean;
  seen: Seen[];
  stdoutLines: string[];
  stderr: string;
  signals: SentSignal[];
  configWrites: ConfigWrite[];
  kills: { at: number; what: string; pid: number }[];
  requests: RequestRecord[];
  budget: number;
  leftovers: { pid: number; pgid: number; cmdline: string }[];
  childRecords: Record<string, unknown>[];
  anchorAt: Map<Anchor, number>;
  /** The case's start in the wall clock the child's records use. */
  startedWall: number;
  midRun: { what: string; detail: Record<string, unknown> }[];
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGTERM: 15 };
const STOP_SIGNALS = new Set(["SIGTERM", "SIGINT", "SIGQUIT"]);

function check(o: Outcome): void {
  const { plan } = o;
  const base = { target: plan.target, case: plan.index, seed: SEED };
  const finding = (what: string, detail: Record<string, unknown> = {}): void => out("finding", { ...base, what, ...detail, plan: VERBOSE ? plan : undefined });
  const note = (what: string, detail: Record<string, unknown> = {}): void => out("note", { ...base, what, ...detail });
  const records = o.seen.map((s) => s.record);
  const at = (match: (r: Record<string, unknown>) => boolean): number | undefined => o.seen.find((s) => match(s.record))?.at;
  const complete = records.findLast((r) => r.event === "shutdown.complete");
  const listeningAt = o.anchorAt.get("listening");
  const stopAt = o.anchorAt.get("stop.begin");

  if (o.cut) finding("sluice did not exit within the case's 60 s", { lastRecords: records.slice(-5) });

  // No stack trace, nor a runtime's own report of an error nobody handled.
  const all = `${o.stdoutLines.join("\n")}\n${o.stderr}`;
  const trace = /^\s+at .+[:(]\d+|Unhandled|uncaught|panic|RUST_BACKTRACE|Segmentation fault|oh no: Bun has crashed/im.exec(all);
  if (trace) finding("stack trace or runtime error in the output", { match: all.slice(Math.max(0, trace.index - 300), trace.index + 300) });
  if (records.some((r) => r.event === "request.failed" || r.event === "response.failed" || r.event === "stop.failed")) {
    finding("an error record", { records: records.filter((r) => ["request.failed", "response.failed", "stop.failed"].includes(String(r.event))) });
  }

  // The last line, and the exit code for what ended it.
  const firstSignalBefore = (limit: number | undefined) => o.signals.find((s) => limit === undefined || s.at <= limit);
  if (!complete) {
    // Only a signal before the handlers (README: "the first moments") may end sluice so.
    const signal = firstSignalBefore(undefined);
    const expected = signal ? 128 + SIGNAL_NUMBERS[signal.signal]! : undefined;
    const invalidBeforeRead = o.configWrites.some((w) => !w.valid) && listeningAt === undefined;
    if (o.exitCode === 78 && invalidBeforeRead && /sluice\.toml line/.test(o.stderr)) {
      note("the invalid file was written before sluice first read it (exit 78)", { stderr: o.stderr.trim() });
    } else if (listeningAt !== undefined || o.exitCode !== expected) {
      finding("exit without a shutdown complete record", { exitCode: o.exitCode, firstSignal: signal, listeningAt, lastLines: o.stdoutLines.slice(-3), stderr: o.stderr.slice(-500) });
    } else if (o.childRecords.length > 0) {
      finding("ended by a signal's default action after its child started", { exitCode: o.exitCode, signal });
    } else note("ended by a signal before its handlers", { signal: signal!.signal, at: Math.round(signal!.at), exitCode: o.exitCode });
  } else {
    const lastLine = o.stdoutLines.at(-1) ?? "";
    if (!lastLine.includes('"shutdown.complete"')) finding("the last line is not the shutdown complete record", { lastLines: o.stdoutLines.slice(-3) });
    if (complete.exitCode !== o.exitCode) finding("exit code differs from the shutdown record's", { exitCode: o.exitCode, record: complete.exitCode });
    checkExitCode(o, complete, finding);
  }

  // Exit within the budget (from the stop's start) and within a second of a fast stop.
  const stopStart = Math.min(...[stopAt, o.signals.find((s) => STOP_SIGNALS.has(s.signal))?.at].filter((t): t is number => t !== undefined));
  if (Number.isFinite(stopStart) && complete) {
    const took = o.exitedAt - stopStart;
    if (took > o.budget + EXIT_MARGIN_MS) finding("exit later than the stop budget", { tookMs: Math.round(took), budgetMs: o.budget, phases: complete.phases });
  }
  const fastSignal = fastStopSignal(o);
  if (fastSignal && complete?.fast) {
    const took = o.exitedAt - fastSignal.at;
    if (took > FAST_STOP_MS) (took > FAST_STOP_MS + 500 ? finding : note)("fast stop took more than a second", { tookMs: Math.round(took), phases: complete.phases });
  }
  if (fastSignal && complete && !complete.fast && o.exitedAt - fastSignal.at > 300) {
    finding("a fast-stop signal was not acted on", { signal: fastSignal, exitedAt: Math.round(o.exitedAt), stopAt });
  }

  // Nothing of the child's groups outlives sluice.
  if (o.leftovers.length > 0) finding("processes of the child's group alive after sluice exited", { leftovers: o.leftovers });

  for (const { what, detail } of o.midRun) finding(what, detail);
  const rollouts = rolloutsOf(o.seen, finding);
  for (const rollout of rollouts) {
    const key = `${plan.target} ${rollout.result?.result ?? "none"}${(rollout.result?.aborted as number) > 0 ? " aborting" : ""}${(rollout.result?.killed as number) > 0 ? " killing" : ""}`;
    rolloutTally[key] = (rolloutTally[key] ?? 0) + 1;
  }
  checkRollouts(o, rollouts, complete, finding);

  // The ordering proof, from the child's side. A child a rolling restart stopped (the old one
  // it retired, a new one that failed) hears it with sluice serving on: it must have nothing
  // in flight, unless the rolling restart cut requests at its drain deadline.
  const retiredBy = new Map<number, Rollout>();
  for (const rollout of rollouts) {
    // An interrupted one may have signalled its old child before the stop began.
    if (rollout.result?.result === "ok" || rollout.result?.oldChildSignalled === true || tookOver(rollout)) retiredBy.set(rollout.oldPid, rollout);
    else if (rollout.result?.result === "failed" && rollout.newPid !== undefined) retiredBy.set(rollout.newPid, rollout);
  }
  const cutStop = complete !== undefined && ((complete.aborted as number) > 0 || complete.fast === true);
  for (const term of o.childRecords.filter((r) => r.event === "term")) {
    const retired = retiredBy.get(term.pid as number);
    if (retired) {
      const aborted = retired.result!.result === "failed" && !tookOver(retired) ? 0 : (retired.result!.aborted as number);
      if ((term.inFlight as number) > 0 && aborted === 0) finding("a child stopped by a rolling restart got its stop signal with requests in flight", { term, result: retired.result });
      continue;
    }
    const heardAt = (term.heardAt as number) - o.startedWall;
    if (term.sluicePort === "accepted") finding("the child got its stop signal while sluice's port accepted", { term });
    if ((term.inFlight as number) > 0 && !cutStop) finding("the child got its stop signal with requests in flight", { term, complete });
    if (stopAt === undefined || heardAt < stopAt - 20) finding("the child got SIGTERM without a stop or a rolling restart", { term, heardAt: Math.round(heardAt), stopAt });
  }

  checkAnswers(o, complete, rollouts, finding, note, stopAt);
}

/** A rolling restart that failed because its new child exited after it took over: its old child was retired as for ok. */
function tookOver(rollout: Rollout): boolean {
  return rollout.result?.result === "failed" && / exited with code \d+ after it took over;/.test(String(rollout.result.reason));
}

/** One rolling restart, from its records: the begin, its new child's start and ready, its result. */
interface Rollout {
  beginIndex: number;
  oldPid: number;
  newPid?: number;
  newPort?: number;
  newReadyIndex?: number;
  newReadyAt?: number;
  result?: Record<string, unknown>;
  resultIndex?: number;
  resultAt?: number;
}

/** The rolling restarts in the order of their records (a begin's new child is the next child started). */
function rolloutsOf(seen: Seen[], finding: (what: string, detail?: Record<string, unknown>) => void): Rollout[] {
  const rollouts: Rollout[] = [];
  let open: Rollout | undefined;
  seen.forEach(({ at, record }, index) => {
    if (record.event === "rolling-restart.begin") {
      if (open) finding("a rolling restart began while another was under way", { open, record });
      open = { beginIndex: index, oldPid: record.pid as number };
      rollouts.push(open);
    } else if (record.event === "child.started" && open && open.newPid === undefined) {
      open.newPid = record.pid as number;
      open.newPort = record.port as number;
    } else if (record.event === "child.ready" && open && record.pid === open.newPid) {
      open.newReadyIndex = index;
      open.newReadyAt = at;
    } else if (record.event === "rolling-restart" && record.result !== "skipped") {
      if (!open) return finding("a rolling restart result without its begin record", { record });
      open.result = record;
      open.resultIndex = index;
      open.resultAt = at;
      open = undefined;
    }
  });
  return rollouts;
}

/**
 * Each rolling restart's result agrees with what happened: ok only with the new child ready
 * before any stop, the old one gone (SIGKILLed if it ignores SIGTERM); failed only for the
 * new child's exit or readiness (what the case made it do) or the old one's exit meanwhile;
 * abandoned and interrupted only once the stop began.
 */
function checkRollouts(o: Outcome, rollouts: Rollout[], complete: Record<string, unknown> | undefined, finding: (what: string, detail?: Record<string, unknown>) => void): void {
  const stopIndex = o.seen.findIndex((s) => s.record.event === "stop.begin");
  const before = (index: number | undefined, limit: number): boolean => index !== undefined && index >= 0 && index < limit;
  const exitIndex = (pid: number | undefined): number => o.seen.findIndex((s) => s.record.event === "child.exited" && s.record.pid === pid);
  const startOf = (pid: number | undefined) => o.childRecords.find((r) => r.event === "start" && r.pid === pid);
  const killed = (pid: number | undefined): boolean => o.kills.some((k) => k.pid === pid && k.what !== "grandchild");
  // Skipped only before sluice was ready, or while the child requests go to was down (it
  // exited, and no child was ready since: a rolling restart's old child or a new one that
  // never served does not count).
  const readyIndex = o.seen.findIndex((s) => s.record.event === "ready");
  const neverServed = new Set(rollouts.filter((r) => (r.result?.result === "failed" && !tookOver(r)) || r.result?.result === "abandoned").map((r) => r.newPid));
  const switched = (r: Rollout): boolean => r.result?.result === "ok" || r.result?.result === "interrupted" || tookOver(r);
  const notServing = new Set(rollouts.flatMap((r) => [switched(r) ? r.oldPid : undefined, switched(r) ? undefined : r.newPid]));
  o.seen.forEach(({ record }, index) => {
    if (record.event !== "rolling-restart" || record.result !== "skipped") return;
    if (/not ready yet/.test(String(record.reason))) {
      if (before(readyIndex, index)) finding("a rolling restart skipped as not ready yet, after the ready record", { record });
      return;
    }
    const lastExit = o.seen.findLastIndex((s, i) => i < index && s.record.event === "child.exited" && !notServing.has(s.record.pid as number));
    const lastReady = o.seen.findLastIndex((s, i) => i < index && s.record.event === "child.ready" && !neverServed.has(s.record.pid as number));
    if (!/restarting/.test(String(record.reason)) || lastExit < lastReady) finding("a rolling restart skipped with the child ready", { record });
  });
  for (const rollout of rollouts) {
    const { result } = rollout;
    const detail = { rollout, newChild: startOf(rollout.newPid) };
    if (!result) {
      if (complete) finding("a rolling restart with no result record", detail);
      continue;
    }
    const kind = String(result.result);
    if (result.pid !== rollout.oldPid) finding("a rolling restart's result names another old child", detail);
    if ((kind === "ok" || kind === "interrupted" || tookOver(rollout)) && (result.newPid !== rollout.newPid || result.port !== rollout.newPort || rollout.newReadyIndex === undefined)) {
      finding(`a rolling restart ${kind} whose new child is not the one started and ready`, detail);
    }
    if ((kind === "abandoned" || kind === "interrupted") && !before(stopIndex, rollout.resultIndex!)) finding(`a rolling restart ${kind} with no stop begun`, detail);
    if (kind === "ok" && before(stopIndex, rollout.newReadyIndex ?? Infinity)) finding("a rolling restart ok although the stop began before its new child was ready", detail);
    const behaviour = startOf(rollout.newPid)?.behaviour as NewChild | undefined;
    if (kind === "failed") {
      const reason = String(result.reason);
      if (/ exited with code \d+ before it was ready/.test(reason)) {
        if (!before(exitIndex(rollout.newPid), rollout.resultIndex!)) finding("a rolling restart failed for a new child's exit not seen", detail);
        else if (behaviour !== "exit" && behaviour !== "ignore-port" && !killed(rollout.newPid)) finding("a rolling restart failed for the exit of a new child that did not exit on its own", detail);
      } else if (/ was not ready within --ready-timeout /.test(reason)) {
        if (behaviour !== "never-ready" && behaviour !== "ignore-port" && behaviour !== "slow-ready") finding("a rolling restart failed for the readiness of a new child that gets ready", detail);
      } else if (tookOver(rollout)) {
        if (!before(exitIndex(rollout.newPid), rollout.resultIndex!)) finding("a rolling restart failed for a new child's exit (after it took over) not seen", detail);
        if (!before(exitIndex(rollout.oldPid), rollout.resultIndex!)) finding("a rolling restart failed after the switch before its old child exited", detail);
      } else if (/ exited meanwhile$/.test(reason)) {
        if (!before(exitIndex(rollout.oldPid), rollout.resultIndex!)) finding("a rolling restart failed for an old child's exit not seen", detail);
      } else finding("a rolling restart failed for an unexpected reason", detail);
    }
    if (kind === "ok") {
      if (behaviour !== "normal" && behaviour !== "slow-ready") finding(`a rolling restart ok with a new child that does not get ready (${behaviour})`, detail);
      if (!before(exitIndex(rollout.oldPid), rollout.resultIndex!)) finding("a rolling restart ok before its old child exited", detail);
      // A child deaf to SIGTERM exits only by SIGKILL (unless the case killed it).
      if (o.plan.child.onTerm === "ignore" && result.killed === 0 && !killed(rollout.oldPid)) finding("a rolling restart ok with killed 0, but the old child ignores SIGTERM", detail);
    }
  }
}

/** The signal that made the stop fast: SIGQUIT, or a second SIGTERM/SIGINT, after the handlers. */
function fastStopSignal(o: Outcome): SentSignal | undefined {
  // The kernel merges a signal sent while the same one is still pending: two SIGTERMs sent a
  // millisecond apart to a busy sluice arrive as one (seed 21 case 37 on the binary: a normal
  // stop). A second stop signal counts once sluice received two (each has its record).
  const received = o.seen.filter((s) => s.record.event === "signal" && (s.record.signal === "SIGTERM" || s.record.signal === "SIGINT")).length;
  let stops = 0;
  for (const s of o.signals) {
    if (!s.afterListening || s.at > o.exitedAt) continue;
    if (s.signal === "SIGQUIT") return s;
    if ((s.signal === "SIGTERM" || s.signal === "SIGINT") && ++stops >= 2 && received >= 2) return s;
  }
  return undefined;
}

function checkExitCode(o: Outcome, complete: Record<string, unknown>, finding: (what: string, detail?: Record<string, unknown>) => void): void {
  const reason = String(complete.reason);
  const forced = (complete.aborted as number) > (complete.closed as number) || (complete.killed as number) > 0 || complete.fast === true;
  if (STOP_SIGNALS.has(reason)) {
    if (!o.signals.some((s) => s.signal === reason)) finding("stopped for a signal that was not sent", { reason });
    const expected = forced ? 75 : 0;
    if (o.exitCode !== expected) finding("exit code of a signal stop", { exitCode: o.exitCode, expected, complete });
    return;
  }
  const match = /^child exited with code (\d+)$/.exec(reason);
  if (match) {
    const code = Number(match[1]);
    if (o.exitCode !== code) finding("exit code of a child exit", { exitCode: o.exitCode, childCode: code });
    if (code !== 3 && code !== 137) finding("the child exited with a code the case never caused", { code, kills: o.kills });
    // The policy the exit met: the plan's, or (from the file) one a rewrite put there before
    // sluice read it, at its start or at a reload (the policy applies from the next exit on).
    const policies = o.plan.flags.includes("restart")
      ? [o.plan.timings.restart]
      : [o.plan.timings.restart, ...o.configWrites.filter((w) => w.restart && w.at < o.exitedAt).map((w) => w.restart!)];
    // A child exit ends sluice only once its stop began (a failed restart has its own reason).
    if (policies.every((policy) => policy === "always" || (policy === "on-failure" && code !== 0))) {
      finding("a child exit ended sluice despite --restart", { restart: o.plan.timings.restart, code });
    }
    return;
  }
  if (reason === "the child's restart failed") {
    const failed = o.seen.filter((s) => s.record.event === "child.restart-failed").map((s) => s.record);
    if (failed.length === 0) finding("stopped for a failed restart that no child.restart-failed record reported");
    // As at the start: the restarted child's own code when it exited non-zero before it was ready, else 78.
    const childCodes = o.seen.filter((s) => s.record.event === "child.exited").map((s) => s.record.code);
    if (o.exitCode !== 78 && !childCodes.includes(o.exitCode)) finding("a failed restart's exit code is neither 78 nor a child's", { exitCode: o.exitCode, childCodes, failed });
    return;
  }
  if (reason === "start failed") {
    const childCodes = o.seen.filter((s) => s.record.event === "child.exited").map((s) => s.record.code);
    const invalidAtStart = o.configWrites.some((w) => !w.valid && (o.anchorAt.get("listening") ?? Infinity) > w.at);
    if (o.exitCode === 78 && !invalidAtStart) {
      finding("start failed with 78", { records: o.seen.filter((s) => s.record.level === "FATAL" || s.record.event === "start.failed").map((s) => s.record) });
    } else if (o.exitCode !== 78 && !childCodes.includes(o.exitCode)) finding("start failed with a code that is not the child's", { exitCode: o.exitCode, childCodes });
    return;
  }
  finding("unknown stop reason", { reason });
}

function checkAnswers(
  o: Outcome,
  complete: Record<string, unknown> | undefined,
  rollouts: Rollout[],
  finding: (what: string, detail?: Record<string, unknown>) => void,
  note: (what: string, detail?: Record<string, unknown>) => void,
  stopAt: number | undefined,
): void {
  const times = (event: string) => o.seen.filter((s) => s.record.event === event).map((s) => s.at);
  const readyAt = times("ready")[0];
  const childReady = times("child.ready");
  // The exits a rolling restart made (its old child retired, a new one that never served)
  // cost no request: they excuse no 502 or 503, unless the case killed that child itself.
  const neverServed = new Set(rollouts.filter((r) => r.result?.result === "failed" || r.result?.result === "abandoned").map((r) => r.newPid));
  const retiredOld = new Set(rollouts.filter((r) => r.result?.result === "ok" || r.result?.result === "interrupted").map((r) => r.oldPid));
  const killedPids = new Set(o.kills.filter((k) => k.what !== "grandchild").map((k) => k.pid));
  const childExits = o.seen
    .filter((s) => s.record.event === "child.exited")
    .filter((s) => !neverServed.has(s.record.pid as number) && !(retiredOld.has(s.record.pid as number) && !killedPids.has(s.record.pid as number)))
    .map((s) => ({ at: s.at, pid: s.record.pid as number }));
  const kills = o.kills.filter((k) => k.what !== "grandchild" && !neverServed.has(k.pid));
  // An old child killed after its rolling restart's switch: a request without a body it dies
  // on goes again to the new child (README), so only an upload may get 502 for it.
  const afterSwitch = (pid: number, at: number): boolean =>
    rollouts.some((r) => r.oldPid === pid && r.newReadyAt !== undefined && at > r.newReadyAt && (r.result?.result === "ok" || r.result?.result === "interrupted"));
  // A rolling restart that cut requests at its drain deadline: answers on the old child (sent
  // before the new one was ready) cut or 503 up to its result, as many as it says it aborted.
  // An interrupted one with an `aborted` count cut them before the stop began. sluice switches
  // as it writes the new child's ready record, so a request sent once that record was read
  // went to the new child (seed 126 case 7: a stream sent 2 ms after it, cut by that child's
  // crash, was counted as the rolling restart's). A failed one whose new child exited after it
  // took over drained the old child all the same, with the same deadline (seed 9001 case 37
  // under Deno: a GET waiting on the old child got 503 at a drain-timeout of 50 ms).
  const rolloutCuts = rollouts
    .filter((r) => (r.result?.result === "ok" || r.result?.result === "interrupted" || tookOver(r)) && (r.result!.aborted as number) > 0)
    .map((r) => ({ rollout: r, from: r.newReadyAt!, to: r.resultAt! + 50, aborted: r.result!.aborted as number, seen: [] as unknown[] }));
  const rolloutCut = (sentAt: number, answeredAt: number, where: unknown): boolean => {
    const cut = rolloutCuts.find((c) => sentAt <= c.from && answeredAt >= c.from && answeredAt <= c.to);
    cut?.seen.push(where);
    return cut !== undefined;
  };
  const drainAt = o.anchorAt.get("drain");
  const fast = fastStopSignal(o);
  // The stop began when the signal that asked for it was sent: its record is read later, by
  // tens of milliseconds on a loaded machine, and a fast stop closes the listener at once.
  const stopSignal = o.signals.find((s) => s.afterListening && STOP_SIGNALS.has(s.signal));
  // A stop the child's exit began (its start failed, it exited, its restart failed) began when
  // the case killed that child: the records come in 10 ms batches (src/output.ts), read later
  // still on a loaded machine, and the listener closes at once (seed 111 case 20 under Deno: a
  // child killed at its start, a connection refused 19 ms before stop.begin was read).
  // (The exit that began it: the last record about a child before stop.begin.)
  const stopIndex = o.seen.findIndex((s) => s.record.event === "stop.begin");
  const childEvents = o.seen.slice(0, Math.max(0, stopIndex)).filter((s) => s.record.event === "child.exited" || s.record.event === "child.started");
  const lastChildEvent = childEvents.at(-1);
  const trigger = stopIndex >= 0 && !STOP_SIGNALS.has(String(o.seen[stopIndex]!.record.reason)) && lastChildEvent?.record.event === "child.exited"
    ? lastChildEvent
    : undefined;
  const killedAt = trigger && o.kills.findLast((k) => k.what !== "grandchild" && k.pid === trigger.record.pid && k.at <= trigger.at)?.at;
  const stopStart = Math.min(stopAt ?? Infinity, stopSignal?.at ?? Infinity, killedAt ?? Infinity);
  /** Whether the child counted as not ready at some moment of [from, to]. */
  const notReadyDuring = (from: number, to: number): boolean => {
    if (readyAt === undefined || from <= readyAt) return true;
    // An old child's exit after its rolling restart's switch leaves the new one serving.
    return childExits.filter((exit) => !afterSwitch(exit.pid, exit.at)).some(({ at: exit }) => {
      const back = childReady.find((r) => r > exit) ?? Infinity;
      return exit <= to + 50 && back >= from - 50;
    });
  };
  const childDiedNear = (from: number, to: number, upload = true): boolean =>
    childExits.some((exit) => exit.at >= from - 1500 && exit.at <= to + 200 && (upload || !afterSwitch(exit.pid, exit.at))) ||
    kills.some((k) => k.at >= from - 1500 && k.at <= to + 200 && (upload || !afterSwitch(k.pid, k.at)));
  const cutAt = [fast?.at, (complete?.aborted as number) > 0 ? drainAt : undefined].filter((t): t is number => t !== undefined);
  const wasCut = (answeredAt: number): boolean => cutAt.some((t) => answeredAt >= t - 50);
  const statuses: string[] = [];
  for (const request of o.requests) {
    request.answers.forEach((answer, i) => {
      const answeredAt = request.answeredAt[i] ?? o.exitedAt;
      const sentAt = i === 0 ? request.sentAt : (request.writtenAt[i] ?? request.answeredAt[i - 1]!);
      const where = { kind: request.kind, nth: i, sentAt: Math.round(sentAt), answeredAt: Math.round(answeredAt), stopAt: stopAt && Math.round(stopAt), readyAt: readyAt && Math.round(readyAt) };
      statuses.push(answer.kind === "status" ? String(answer.status) : answer.kind);
      switch (answer.kind) {
        case "refused":
          if (o.anchorAt.has("listening") && sentAt > o.anchorAt.get("listening")! && sentAt < stopStart - 20 && sentAt < o.exitedAt - 20) {
            finding("connection refused while sluice served", where);
          }
          return;
        case "status": {
          const { status } = answer;
          if (status === 200) {
            if (answer.body !== request.expected[i]) finding("a 200 with the wrong body", { ...where, body: answer.body.slice(0, 100) });
          } else if (status === 503) {
            if (rolloutCut(sentAt, answeredAt, where)) return;
            if (!notReadyDuring(sentAt, answeredAt) && !wasCut(answeredAt) && !(stopAt !== undefined && childDiedNear(sentAt, answeredAt))) {
              finding("a 503 the README does not give", where);
            }
          } else if (status === 499 && o.plan.target === "deno" && request.kind === "post" && drainAt !== undefined && sentAt <= drainAt + 20 && answeredAt >= drainAt - 50) {
            // README (Lifecycle, step 4): under Deno, closing the listener cuts request bodies
            // still arriving (denoland/deno#36809); the upload ends as a client cancel.
            note("an upload cut by Deno's listener close got 499", { ...where, drainAt: Math.round(drainAt) });
          } else if (status === 502) {
            if (!childDiedNear(sentAt, answeredAt, request.kind === "post")) finding("a 502 with no child exit near it", where);
          } else finding(`a ${status}`, where);
          return;
        }
        case "timeout":
          finding("no answer within 30 s", { ...where, bytes: answer.bytes });
          return;
        default:
          // Reset, empty or cut: only where sluice cut it (a fast stop, the drain's deadline, a rolling restart's).
          // (A rolling restart's first: a fast stop right after its record must not hide what it cut.)
          if (rolloutCut(sentAt, answeredAt, where)) return;
          if (wasCut(answeredAt)) return;
          // A response under way when its child died can only be cut (its head went out).
          if (answer.kind !== "empty" && answer.bytes > 0 && childDiedNear(sentAt, answeredAt)) return;
          // A connection that arrives as the listener closes: the kernel resets what is still in
          // its accept queue, and the runtimes close what they accepted with no request read yet
          // (docs/runtime-notes.md, "A listener's close").
          if (i === 0 && drainAt !== undefined && sentAt >= drainAt - 150 && sentAt <= drainAt + 20) {
            note("a connection made as the listener closed got no answer", { ...where, drainAt: Math.round(drainAt), answer });
            return;
          }
          // A request written on an idle keep-alive connection as the listener's close closes
          // the idle ones (its last answer came before the stop: no Connection: close on it).
          // (Closed with the request unread: a reset, on Linux.)
          if (i > 0 && (answer.kind === "empty" || (answer.kind === "reset" && answer.bytes === 0)) && drainAt !== undefined && sentAt >= drainAt - 150 && sentAt <= drainAt + 20) {
            note("a keep-alive connection closed as its next request was written, at the listener's close", { ...where, drainAt: Math.round(drainAt), answer });
            return;
          }
          finding(`an accepted connection got ${answer.kind === "reset" ? `a reset (${answer.error})` : answer.kind === "empty" ? "no answer" : "a cut answer"}`, { ...where, answer, complete });
      }
    });
  }
  for (const cut of rolloutCuts) {
    if (cut.seen.length !== cut.aborted) finding("a rolling restart's aborted count differs from the answers it cut", { result: cut.rollout.result, cutAnswers: cut.seen });
  }
  if (VERBOSE) {
    note("answers", { statuses, exitCode: o.exitCode });
    note("timeline", {
      records: o.seen.map(({ at, record }) => `${Math.round(at)} ${record.event} ${record.pid ?? ""} ${record.result ?? record.step ?? record.signal ?? ""} ${record.error ?? record.changed ?? record.reason ?? ""}`),
      actions: [...o.signals.map((s) => `${Math.round(s.at)} ${s.signal}`), ...o.configWrites.map((w) => `${Math.round(w.at)} config ${w.valid ? "valid" : "invalid"}`), ...o.kills.map((k) => `${Math.round(k.at)} ${k.what}`)],
    });
  }
}

// ---------------------------------------------------------------- processes

function readChildRecords(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line));
  } catch {
    return [];
  }
}

/** Processes (not zombies) whose process group is one of `groups`, after a moment for SIGKILLs to land. */
async function leftoverProcesses(groups: number[]): Promise<{ pid: number; pgid: number; cmdline: string }[]> {
  const wanted = new Set(groups);
  let found: { pid: number; pgid: number; cmdline: string }[] = [];
  for (let tries = 0; tries < 10; tries++) {
    found = [];
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        const [state, , pgid] = [fields[0], fields[1], Number(fields[2])];
        if (state === "Z" || !wanted.has(pgid)) continue;
        found.push({ pid: Number(name), pgid, cmdline: readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ").trim() });
      } catch {
        // gone meanwhile
      }
    }
    if (found.length === 0) return found;
    await sleep(100);
  }
  return found;
}

function tryKill(pid: number, signal: string): void {
  try {
    process.kill(pid, signal as NodeJS.Signals);
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function sleepUnless(ms: number, until: Promise<unknown>): Promise<void> {
  return Promise.race([sleep(ms), until.then(() => {})]);
}

// ---------------------------------------------------------------- main

let ran = 0;
let cutShort = false;
const byTarget: Record<string, number> = {};
outer: for (let index = ONLY ?? 0; index < (ONLY === undefined ? CASES : ONLY + 1); index++) {
  for (const target of TARGET_NAMES) {
    if (Date.now() > DEADLINE) {
      cutShort = true;
      break outer;
    }
    const plan = planCase(index, target);
    if (VERBOSE) out("note", { what: "plan", plan });
    await runCase(plan);
    ran++;
    byTarget[target] = (byTarget[target] ?? 0) + 1;
  }
}
out("summary", { seed: SEED, cases: ran, byTarget, rollingRestarts: rolloutTally, findings, cutShort });
process.exit(findings > 0 ? 1 : 0);
