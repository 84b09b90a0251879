/**
 * @module deploy/systemd/sluice.service under real systemd (252 here, as on Debian 12), booted
 * with systemd-nspawn from the host's own root: a read-only bind mount of / with
 * `--volatile=overlay`, so everything the container writes goes to a tmpfs and the host
 * is never changed. Into it go, with --bind-ro and at the paths the unit names:
 *   deploy/systemd/sluice.service -> /etc/systemd/system/sluice.service (the file itself)
 *   deploy/systemd/sluice.toml    -> /etc/sluice/sluice.toml (a copy the test edits)
 *   dist/sluice                   -> /usr/local/bin/sluice
 *   deploy/rolling-restart.sh     -> /usr/local/bin/sluice-rolling-restart
 *   fixtures/systemd/server.py    -> /srv/app/server (the app: delays its readiness,
 *                                    records who sent its SIGTERM)
 * so the shipped unit and config run unchanged (the container has its own network
 * namespace: sluice gets port 80 there). Traffic runs inside that namespace only
 * (`nsenter -n`); systemctl and journalctl inside the container (`nsenter -a`).
 *
 * Needs root; systemd-nspawn (Debian's systemd-container), python3 and curl are installed with
 * apt-get when missing. The container and the mount are removed after the last test, and at
 * exit when a run is cut short.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, BUN, readLines, ROOT, track, until } from "../harness.ts";

const UNIT_FILE = join(ROOT, "deploy/systemd/sluice.service");
const CONFIG_FILE = join(ROOT, "deploy/systemd/sluice.toml");
const FIXTURES = join(ROOT, "tests/deploy/fixtures/systemd");
const UNIT = "sluice.service";
/** The negative control: the shipped unit running a binary that never sends READY=1. */
const NO_READY_UNIT = "sluice-noready.service";
/** How long the app waits before listening (server.py's default). */
const APP_BIND_DELAY_MS = 3000;
const MACHINE = `sluice-test-${process.pid}`;
/** What the app's own JSON lines start with (server.py). */
const APP_LINE = '^\\{"app": ';

/** The environment for every command: no proxy may take loopback traffic elsewhere. */
const ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter(([key, value]) => value !== undefined && !/_proxy$/i.test(key)),
) as Record<string, string>;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion within `timeoutMs` (then kills it and fails). */
async function run(cmd: string[], timeoutMs = 60_000, env: Record<string, string> = ENV): Promise<Run> {
  const proc = Bun.spawn(cmd, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc.pid);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout as ReadableStream).text(),
    new Response(proc.stderr as ReadableStream).text(),
  ]);
  clearTimeout(timer);
  if (timedOut) throw new Error(`${cmd.join(" ")} did not finish within ${timeoutMs}ms; stdout: ${stdout}; stderr: ${stderr}`);
  return { code, stdout, stderr };
}

/** Runs and requires exit 0. */
async function ok(cmd: string[], timeoutMs = 60_000): Promise<string> {
  const result = await run(cmd, timeoutMs);
  if (result.code !== 0) throw new Error(`${cmd.join(" ")} exited ${result.code}; stdout: ${result.stdout}; stderr: ${result.stderr}`);
  return result.stdout;
}

// ---------------------------------------------------------------------------------------
// The container

interface Container {
  work: string;
  root: string;
  nspawn: ReturnType<typeof Bun.spawn>;
  /** The container's PID 1 (systemd), as the host sees it. */
  leader: number;
  consoleLog: string;
  config: string;
}

let container: Container | undefined;
/** The bind mount of / made for the container (unmounted at the end). */
let mountedRoot: string | undefined;

function need(): Container {
  if (!container) throw new Error("the container did not boot (see the first test)");
  return container;
}

/** A command inside the container (all its namespaces). */
function inside(args: string[], timeoutMs = 60_000): Promise<Run> {
  return run(["nsenter", "-t", String(need().leader), "-a", "--", ...args], timeoutMs);
}

async function insideOk(args: string[], timeoutMs = 60_000): Promise<string> {
  const result = await inside(args, timeoutMs);
  if (result.code !== 0) throw new Error(`${args.join(" ")} exited ${result.code} in the container; stdout: ${result.stdout}; stderr: ${result.stderr}`);
  return result.stdout;
}

/** Properties of a unit, by `systemctl show`. */
async function show(unit: string, ...properties: string[]): Promise<Record<string, string>> {
  const out = await insideOk(["systemctl", "show", unit, ...properties.flatMap((p) => ["-p", p])]);
  return Object.fromEntries(out.trim().split("\n").map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]));
}

/** An HTTP status code from inside the container's network namespace ("000": no answer). */
async function httpStatus(url: string): Promise<string> {
  const result = await run(["nsenter", "-t", String(need().leader), "-n", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--noproxy", "*", url], 15_000);
  return result.stdout.trim();
}

interface Entry {
  message: string;
  pid: number;
}

/** Journal entries as JSON (`matches` are journalctl field matches). */
async function journal(...matches: string[]): Promise<Entry[]> {
  const out = await insideOk(["journalctl", "--no-pager", "-o", "json", "--output-fields=MESSAGE,_PID", ...matches]);
  const entries: Entry[] = [];
  for (const line of out.split("\n")) {
    if (!line) continue;
    const raw = JSON.parse(line) as { MESSAGE?: unknown; _PID?: string };
    const message = typeof raw.MESSAGE === "string" ? raw.MESSAGE : Array.isArray(raw.MESSAGE) ? Buffer.from(raw.MESSAGE as number[]).toString() : "";
    entries.push({ message, pid: Number(raw._PID) });
  }
  return entries;
}

/** What systemd itself logged about a unit (at debug level: notifications, state changes). */
async function managerLog(unit: string): Promise<string[]> {
  return (await journal("_PID=1", `UNIT=${unit}`)).map((e) => e.message);
}

interface Notification {
  pid: number;
  fields: string;
  index: number;
}

/** The sd_notify messages systemd received for a unit, in order ("Got notification message"). */
function notifications(lines: string[], unit: string): Notification[] {
  const pattern = new RegExp(`^${unit.replace(".", "\\.")}: Got notification message from PID (\\d+) \\((.*)\\)$`);
  return lines.flatMap((line, index) => {
    const match = pattern.exec(line);
    return match ? [{ pid: Number(match[1]), fields: match[2]!, index }] : [];
  });
}

/**
 * JSON lines the unit's processes wrote (sluice's log records and the app's own lines) that
 * contain `grep` (a regular expression, applied by journalctl: the access records of the
 * load test would make reading them all slow).
 */
async function serviceRecords(grep: string): Promise<Record<string, unknown>[]> {
  return (await journal(`_SYSTEMD_UNIT=${UNIT}`, `--grep=${grep}`)).flatMap((e) => {
    try {
      const value = JSON.parse(e.message) as unknown;
      return typeof value === "object" && value !== null ? [value as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/** Runs `body`; on failure adds the tail of the unit's journal to the error. */
async function withJournal(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    let tail = "";
    try {
      // Without systemd's debug lines about setting up the unit's namespace.
      const noise = /mount|Mount|namespace|duplicate|redundant|inaccessible|propagate|system call/;
      const lines = (await inside(["journalctl", "--no-pager", "-o", "cat", "-n", "1000", "-u", UNIT], 10_000)).stdout.split("\n");
      tail = lines.filter((line) => !noise.test(line)).slice(-60).join("\n");
    } catch (inner) {
      tail = `(no journal: ${String(inner)})`;
    }
    if (error instanceof Error) error.message += `\n--- journalctl -u ${UNIT} (last 60) ---\n${tail}`;
    throw error;
  }
}

/** The host-side children of a process (Linux: /proc/<pid>/task/<pid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** True when `pid` is the init of a PID namespace below ours (NSpid: <host pid> 1). */
function isContainerInit(pid: number): boolean {
  try {
    const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]?.trim().split(/\s+/);
    return nspid !== undefined && nspid.length === 2 && nspid[1] === "1";
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function mounted(path: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((line) => line.split(" ")[4] === path);
}

/**
 * Removes the container and the mount. `graceful`: power the container off first (nspawn
 * turns SIGTERM into an orderly shutdown), else SIGKILL its init, which ends every process
 * in its PID namespace. Never removes the work directory recursively while / is mounted in it.
 */
async function teardown(graceful: boolean): Promise<void> {
  const current = container;
  container = undefined;
  if (current) {
    const nspawnPid = current.nspawn.pid;
    if (graceful && alive(nspawnPid)) {
      current.nspawn.kill("SIGTERM");
      const exited = await Promise.race([current.nspawn.exited.then(() => true), Bun.sleep(20_000).then(() => false)]);
      if (!exited) console.error("systemd-nspawn did not stop within 20 s; killing the container");
    }
    for (const pid of [current.leader, nspawnPid]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    await Promise.race([current.nspawn.exited, Bun.sleep(10_000)]);
  }
  cleanupFiles();
}

/** Unmounts / from the work directory, then removes what the test wrote (synchronous: also runs at exit). */
function cleanupFiles(): void {
  if (!mountedRoot) return;
  const root = mountedRoot;
  const work = join(root, "..");
  if (mounted(root)) Bun.spawnSync(["umount", root]);
  if (mounted(root)) Bun.spawnSync(["umount", "--lazy", root]);
  if (mounted(root)) {
    console.error(`could not unmount ${root}; left ${work} in place`);
    return;
  }
  mountedRoot = undefined;
  rmdirSync(root); // the (now empty) mount point: rmdir, never a recursive removal
  for (const name of ["app", "etc", "units"]) rmSync(join(work, name), { recursive: true, force: true });
  // systemd-nspawn's lock of the directory (left behind when it was killed).
  for (const name of ["console.log", ".#root.lck"]) rmSync(join(work, name), { force: true });
  rmdirSync(work);
}

// A run cut short (Ctrl-C, CI timeout) skips afterAll: kill the container and unmount at exit.
process.on("exit", () => {
  if (container) {
    for (const pid of [container.leader, container.nspawn.pid]) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    container = undefined;
    // What a killed systemd-nspawn leaves in /run (it removes both when it stops by itself).
    rmSync(`/run/systemd/nspawn/locks/inode-${statSync("/").dev}:${statSync("/").ino}`, { force: true });
    try {
      rmdirSync(`/run/systemd/nspawn/propagate/${MACHINE}`);
    } catch {
      // not there
    }
  }
  cleanupFiles();
});

afterAll(async () => {
  await teardown(true);
});

/**
 * What the test runs, from Debian's packages when missing: systemd-nspawn (systemd-container),
 * the app's interpreter at the path its #! names, curl for requests inside the container.
 */
const NEEDED: [path: string, pkg: string][] = [
  ["/usr/bin/systemd-nspawn", "systemd-container"],
  ["/usr/bin/python3", "python3"],
  ["/usr/bin/curl", "curl"],
];

async function ensurePackages(): Promise<void> {
  const missing = NEEDED.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  // apt keeps whatever proxy settings the machine has.
  const env = { ...(process.env as Record<string, string>), DEBIAN_FRONTEND: "noninteractive" };
  for (const cmd of [["apt-get", "update"], ["apt-get", "install", "-y", ...missing]]) {
    const result = await run(cmd, 300_000, env);
    if (result.code !== 0) throw new Error(`${cmd.join(" ")} failed (${result.code}): ${result.stderr.slice(-2000)}`);
  }
  const still = NEEDED.filter(([path]) => !existsSync(path)).map(([path]) => path);
  if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(", ")}`);
}

/** The shipped unit with `changes` applied (each pattern must match, or the test is wrong). */
function derivedUnit(changes: [RegExp, string][]): string {
  let text = readFileSync(UNIT_FILE, "utf8");
  for (const [pattern, replacement] of changes) {
    if (!pattern.test(text)) throw new Error(`${pattern} matches nothing in ${UNIT_FILE}`);
    text = text.replace(pattern, replacement);
  }
  return text;
}

async function boot(): Promise<{ bootMs: number; state: string }> {
  if (process.getuid?.() !== 0) throw new Error("this test boots systemd-nspawn containers and needs root");
  await ensurePackages();
  const work = mkdtempSync(join(tmpdir(), "sluice-systemd-"));
  chmodSync(work, 0o755);
  const root = join(work, "root");
  for (const dir of ["root", "app", "etc", "units"]) mkdirSync(join(work, dir), { mode: 0o755 });
  copyFileSync(join(FIXTURES, "server.py"), join(work, "app/server"));
  chmodSync(join(work, "app/server"), 0o755);
  const config = join(work, "etc/sluice.toml");
  copyFileSync(CONFIG_FILE, config);
  chmodSync(config, 0o644);
  // The negative control: the same unit, but its binary never sends READY=1. Restart=no so
  // that the failure stays visible instead of turning into a restart loop.
  writeFileSync(
    join(work, "units", NO_READY_UNIT),
    derivedUnit([
      [/^ExecStart=.*$/m, "ExecStart=/usr/bin/sleep 600"],
      [/^TimeoutStartSec=.*$/m, "TimeoutStartSec=3s"],
      [/^Restart=.*$/m, "Restart=no"],
    ]),
    { mode: 0o644 },
  );

  // The host's own tree, writable only through the container's overlay.
  const mount = Bun.spawnSync(["mount", "--bind", "-o", "ro", "/", root]);
  if (mount.exitCode !== 0) throw new Error(`mount --bind / ${root} failed: ${mount.stderr.toString()}`);
  mountedRoot = root;

  const consoleLog = join(work, "console.log");
  const started = performance.now();
  const nspawn = Bun.spawn(
    [
      "/usr/bin/systemd-nspawn",
      "--quiet",
      "--register=no", // no systemd-machined on the host
      "--keep-unit",
      "--volatile=overlay",
      `--directory=${root}`,
      `--machine=${MACHINE}`,
      "--private-network",
      "--console=read-only",
      `--bind-ro=${UNIT_FILE}:/etc/systemd/system/${UNIT}`,
      `--bind-ro=${join(work, "units", NO_READY_UNIT)}:/etc/systemd/system/${NO_READY_UNIT}`,
      `--bind-ro=${BINARY}:/usr/local/bin/sluice`,
      `--bind-ro=${join(ROOT, "deploy/rolling-restart.sh")}:/usr/local/bin/sluice-rolling-restart`,
      `--bind-ro=${join(work, "app")}:/srv/app`,
      `--bind-ro=${join(work, "etc")}:/etc/sluice`,
      "--boot",
      // Only the basic system: the host's own services (databases, timers) stay off.
      "systemd.unit=basic.target",
    ],
    { env: ENV, stdin: "ignore", stdout: Bun.file(consoleLog), stderr: "pipe" },
  );
  let nspawnStderr = "";
  void readLines(nspawn.stderr as ReadableStream<Uint8Array>, (line) => (nspawnStderr += `${line}\n`));
  let leader = 0;
  await until(
    () => {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${nspawnStderr}\n${readFileSync(consoleLog, "utf8").slice(-3000)}`);
      leader = childrenOf(nspawn.pid).find(isContainerInit) ?? 0;
      return leader !== 0;
    },
    30_000,
    "the container's init",
  );
  container = { work, root, nspawn, leader, consoleLog, config };
  // The init becomes systemd a moment later (nspawn sets the namespaces up first); then wait
  // for the boot to finish: running, or degraded when some unit of the host's failed.
  let state = "";
  await until(
    async () => {
      if (nspawn.exitCode !== null) throw new Error(`systemd-nspawn exited ${nspawn.exitCode}: ${nspawnStderr}\n${readFileSync(consoleLog, "utf8").slice(-3000)}`);
      if (readFileSync(`/proc/${leader}/comm`, "utf8").trim() !== "systemd") return false;
      state = (await inside(["systemctl", "is-system-running", "--wait"], 90_000)).stdout.trim();
      return state === "running" || state === "degraded";
    },
    120_000,
    "the container to boot",
  );
  const bootMs = performance.now() - started;
  // Debug level: systemd then logs every sd_notify message it receives and each state change.
  await insideOk(["systemd-analyze", "log-level", "debug"]);
  return { bootMs, state };
}

/** Starts the load loop inside the container's network namespace. */
function startLoad(url: string, concurrency: number, maxRequests: number, maxSeconds: number, pauseMs = 0) {
  const proc = Bun.spawn(
    ["nsenter", "-t", String(need().leader), "-n", "--", BUN, join(FIXTURES, "load.ts"), url, String(concurrency), String(maxRequests), String(maxSeconds), String(pauseMs)],
    { env: ENV, stdin: "pipe", stdout: "pipe", stderr: "pipe" },
  );
  track(proc.pid);
  const state = { ok: 0, failed: 0, final: undefined as undefined | { ok: number; failed: number; sent: number; errors: string[] }, stderr: "" };
  void readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
    const value = JSON.parse(line) as { ok: number; failed: number; done?: boolean; sent: number; errors: string[] };
    state.ok = value.ok;
    state.failed = value.failed;
    if (value.done) state.final = value;
  });
  void readLines(proc.stderr as ReadableStream<Uint8Array>, (line) => (state.stderr += `${line}\n`));
  return {
    state,
    async finish() {
      proc.stdin.end();
      await until(() => state.final !== undefined || proc.exitCode !== null, 30_000, "the load loop's summary");
      await proc.exited;
      if (!state.final) throw new Error(`the load loop ended without a summary: ${state.stderr}`);
      return state.final;
    },
  };
}

// ---------------------------------------------------------------------------------------

describe("deploy/systemd/sluice.service under systemd-nspawn", () => {
  /** Set by the start test, read by the later ones. */
  let mainPid = 0;
  let activeAt = 0;

  test("boots systemd in a container made from the host's root", async () => {
    const { bootMs, state } = await boot();
    const version = (await insideOk(["systemctl", "--version"])).split("\n")[0];
    const analyzed = (await inside(["systemd-analyze", "time"])).stdout.trim().split("\n")[0];
    console.log(`container booted in ${Math.round(bootMs)} ms from spawning systemd-nspawn (${state}; ${version}; ${analyzed})`);
    expect(["running", "degraded"]).toContain(state);
  }, 240_000);

  test("the shipped unit: systemd-analyze verify prints nothing, security rates it at most 2.5, TimeoutStopSec covers the stop budget", async () => {
    // verify inside the container, where every path the unit names exists; the file is the
    // repository's own, bind-mounted at its installed path.
    const verify = await inside(["systemd-analyze", "verify", `/etc/systemd/system/${UNIT}`]);
    expect({ code: verify.code, output: verify.stdout + verify.stderr }).toEqual({ code: 0, output: "" });

    const security = await run(["systemd-analyze", "security", "--offline=true", "--threshold=25", UNIT_FILE]);
    const rating = Number(/Overall exposure level for sluice\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
    console.log(`systemd-analyze security --offline=true: ${rating}`);
    expect(rating).toBeLessThanOrEqual(2.5);
    expect(security.code).toBe(0);
    expect(security.stderr).toBe("");

    // What systemd made of the file.
    const props = await show(UNIT, "Type", "NotifyAccess", "KillMode", "Restart", "TimeoutStopUSec", "DynamicUser",
      "NoNewPrivileges", "ProtectSystem", "PrivateTmp", "CapabilityBoundingSet", "AmbientCapabilities", "MemoryDenyWriteExecute",
      "RestrictAddressFamilies", "Environment");
    expect(props).toMatchObject({
      Type: "notify", NotifyAccess: "main", KillMode: "mixed", Restart: "on-failure", DynamicUser: "yes",
      NoNewPrivileges: "yes", ProtectSystem: "strict", PrivateTmp: "yes", CapabilityBoundingSet: "cap_net_bind_service",
      AmbientCapabilities: "cap_net_bind_service", MemoryDenyWriteExecute: "no",
    });
    expect(props.RestrictAddressFamilies!.split(" ")).toContain("AF_UNIX");

    // TimeoutStopSec = grace period + 5 s margin, and the shipped config's budget fits the grace period.
    const grace = /SLUICE_GRACE_PERIOD=(\d+)s/.exec(props.Environment!)?.[1];
    expect(grace).toBeDefined();
    const timeoutStopS = Number(/^(\d+)s$/.exec(props.TimeoutStopUSec!)?.[1]);
    expect(timeoutStopS).toBeGreaterThanOrEqual(Number(grace) + 5);
    const check = await run([BINARY, "check", "--config", CONFIG_FILE], 30_000, { ...ENV, SLUICE_GRACE_PERIOD: `${grace}s` });
    expect(check.code).toBe(0);
    const budgetS = Number(/total\s+([\d.]+)s/.exec(check.stdout)?.[1]);
    expect(budgetS).toBeGreaterThan(0);
    expect(budgetS + 5).toBeLessThanOrEqual(timeoutStopS);
  }, 60_000);

  test("the unit stays activating until sluice sends READY=1 (after the app is ready), then serves on port 80 as a non-root user", () =>
    withJournal(async () => {
      await insideOk(["systemctl", "enable", UNIT]);
      await insideOk(["systemctl", "start", "--no-block", UNIT]);
      const samples: { state: string; mainPid: string; readyz: string }[] = [];
      await until(
        async () => {
          const props = await show(UNIT, "ActiveState", "MainPID");
          const readyz = await httpStatus("http://127.0.0.1:9000/readyz");
          samples.push({ state: props.ActiveState!, mainPid: props.MainPID!, readyz });
          if (props.ActiveState === "failed") throw new Error(`the unit failed to start: ${JSON.stringify(samples)}`);
          return props.ActiveState === "active";
        },
        60_000,
        "the unit to become active",
      );
      activeAt = Date.now();
      // sluice ran (it has a MainPID and answers /readyz 503 or not at all) while the unit was
      // still activating; once active, /readyz is 200.
      expect(samples.some((s) => s.state === "activating" && s.mainPid !== "0" && s.readyz !== "200")).toBe(true);
      expect(samples.filter((s) => s.state === "active").every((s) => s.readyz === "200")).toBe(true);
      const props = await show(UNIT, "MainPID", "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "SubState");
      mainPid = Number(props.MainPID);
      expect(props.SubState).toBe("running");
      const activatingMs = (Number(props.ActiveEnterTimestampMonotonic) - Number(props.ExecMainStartTimestampMonotonic)) / 1000;
      expect(activatingMs).toBeGreaterThanOrEqual(APP_BIND_DELAY_MS - 500);

      // systemd's own account: READY=1 from sluice, then start -> running.
      const log = await managerLog(UNIT);
      const ready = notifications(log, UNIT).find((n) => n.fields.startsWith("READY=1"));
      expect(ready?.pid).toBe(mainPid);
      expect(log.indexOf(`${UNIT}: Changed start -> running`)).toBeGreaterThan(ready!.index);

      // sluice and the app run as the dynamic user, with CAP_NET_BIND_SERVICE and nothing more.
      const status = await insideOk(["cat", `/proc/${mainPid}/status`]);
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).not.toBe("0");
      expect(/^CapEff:\s+(\w+)/m.exec(status)?.[1]).toBe("0000000000000400");
      expect(/^CapBnd:\s+(\w+)/m.exec(status)?.[1]).toBe("0000000000000400");
      const app = (await serviceRecords(APP_LINE)).find((r) => r.app === "started");
      expect(app).toMatchObject({ ppid: mainPid, leaked: [] });
      expect(app?.uid).not.toBe(0);
      expect(await httpStatus("http://127.0.0.1:80/")).toBe("200");
    }), 90_000);

  test("systemctl reload under load: RELOADING=1 then READY=1, no request fails; a config over the grace period fails the reload", () =>
    withJournal(async () => {
      expect(mainPid).toBeGreaterThan(0);
      // Bounded: 8,000 requests (journald keeps 10,000 lines per unit and 30 s; each request
      // logs one) or 60 s; it is stopped as soon as enough requests followed the reload.
      const load = startLoad("http://127.0.0.1:80/", 4, 8000, 60);
      await until(() => load.state.ok >= 300 || load.state.final !== undefined, 30_000, "300 requests answered before the reload");
      expect(load.state.final).toBeUndefined();
      const before = notifications(await managerLog(UNIT), UNIT).length;

      // A live change: the reload record must name it.
      writeFileSync(need().config, `${readFileSync(CONFIG_FILE, "utf8")}upstream-timeout = "30s"\n`);
      await insideOk(["systemctl", "reload", UNIT]);
      let after: Notification[] = [];
      await until(
        async () => {
          after = notifications(await managerLog(UNIT), UNIT).slice(before).filter((n) => n.fields !== "WATCHDOG=1");
          return after.length >= 2;
        },
        30_000,
        "RELOADING=1 and READY=1",
      );
      expect(after.slice(0, 2).map((n) => [n.pid, n.fields.split(", ")[0]])).toEqual([[mainPid, "RELOADING=1"], [mainPid, "READY=1"]]);
      expect(after[0]!.fields).toMatch(/MONOTONIC_USEC=\d+/);
      // The load ran from before the reload to after READY=1.
      expect(load.state.final).toBeUndefined();
      const okAtReady = load.state.ok;
      let reload: Record<string, unknown> | undefined;
      await until(async () => (reload = (await serviceRecords('"event":"reload"'))[0]) !== undefined, 30_000, "sluice's reload record");
      expect(reload).toMatchObject({ result: "ok", changed: ["upstream-timeout"] });
      await until(() => load.state.ok >= okAtReady + 300 || load.state.final !== undefined, 30_000, "300 more requests after the reload");
      const summary = await load.finish();
      console.log(`load through the reload: ${summary.ok} ok, ${summary.failed} failed`);
      expect(summary.errors).toEqual([]);
      expect(summary.failed).toBe(0);
      expect(summary.ok).toBeGreaterThanOrEqual(600);
      expect(await show(UNIT, "ActiveState", "MainPID", "NRestarts", "ReloadResult")).toMatchObject({
        ActiveState: "active", MainPID: String(mainPid), NRestarts: "0", ReloadResult: "success",
      });

      // A budget over SLUICE_GRACE_PERIOD: ExecReload's "sluice check" fails the reload job,
      // no SIGHUP is sent, and sluice keeps serving as it was.
      const notified = notifications(await managerLog(UNIT), UNIT).filter((n) => n.fields !== "WATCHDOG=1").length;
      writeFileSync(need().config, readFileSync(CONFIG_FILE, "utf8").replace(/^drain-timeout = .*$/m, 'drain-timeout = "60s"'));
      const refused = await inside(["systemctl", "reload", UNIT]);
      writeFileSync(need().config, readFileSync(CONFIG_FILE, "utf8"));
      expect(refused.code).not.toBe(0);
      expect(await show(UNIT, "ActiveState", "MainPID", "ReloadResult")).toMatchObject({ ActiveState: "active", MainPID: String(mainPid), ReloadResult: "exit-code" });
      // The check's own message, in the journal (which receives it asynchronously).
      await until(
        async () => (await journal(`_SYSTEMD_UNIT=${UNIT}`)).some((e) => /stop budget of 72.5s .*exceeds/.test(e.message)),
        15_000,
        "the check's message in the journal",
      );
      expect(notifications(await managerLog(UNIT), UNIT).filter((n) => n.fields !== "WATCHDOG=1").length).toBe(notified);
      expect(await httpStatus("http://127.0.0.1:80/")).toBe("200");
    }), 120_000);

  test("deploying new app code with deploy/rolling-restart.sh (systemctl kill --kill-who=main --signal=SIGUSR2) under load: a new app process takes over, no request fails, the script says ok", () =>
    withJournal(async () => {
      expect(mainPid).toBeGreaterThan(0);
      const appsBefore = (await serviceRecords(APP_LINE)).filter((r) => r.app === "started");
      // Bounded as the reload's load is, and paced: the rolling restart takes over 3 s (the new
      // app listens 3 s after it starts), and the records must stay within journald's rate limit.
      const load = startLoad("http://127.0.0.1:80/", 4, 8000, 60, 5);
      await until(() => load.state.ok >= 300 || load.state.final !== undefined, 30_000, "300 requests answered before the rolling restart");
      expect(load.state.final).toBeUndefined();
      // Its default command is the systemctl kill above; it waits for the result on /metrics.
      const deploy = inside(["sh", "/usr/local/bin/sluice-rolling-restart", "--timeout", "60"], 90_000);
      let record: Record<string, unknown> | undefined;
      // The new app listens 3 s after it starts (APP_BIND_DELAY). journalctl --grep fails while nothing matches.
      const found = () => serviceRecords('"event":"rolling-restart"').catch(() => []);
      await until(async () => (record = (await found())[0]) !== undefined, 30_000, "sluice's rolling-restart record");
      expect(load.state.final).toBeUndefined();
      const okAtSwitch = load.state.ok;
      await until(() => load.state.ok >= okAtSwitch + 300 || load.state.final !== undefined, 30_000, "300 more requests after it");
      const summary = await load.finish();
      console.log(`load through the rolling restart: ${summary.ok} ok, ${summary.failed} failed`);
      expect(summary.errors).toEqual([]);
      expect(summary.failed).toBe(0);
      expect(record).toMatchObject({ result: "ok", killed: 0, exitCode: 0 });
      expect(await deploy).toMatchObject({ code: 0, stdout: "rolling restart ok: the new child serves\n" });

      // sluice stayed the unit's main process; the app is a new process of sluice's; the old
      // one heard SIGTERM from sluice while sluice went on serving.
      expect(await show(UNIT, "ActiveState", "MainPID", "NRestarts")).toMatchObject({ ActiveState: "active", MainPID: String(mainPid), NRestarts: "0" });
      // `systemctl status` tells the deploy how it went (sluice's STATUS=).
      expect((await show(UNIT, "StatusText")).StatusText).toMatch(
        new RegExp(`^serving on .+; last rolling restart ok: child ${record!.newPid} on port ${record!.port} replaced child ${record!.pid}$`),
      );
      const records = await serviceRecords(APP_LINE);
      const apps = records.filter((r) => r.app === "started");
      expect(apps.length).toBe(appsBefore.length + 1);
      expect(apps.at(-1)).toMatchObject({ pid: record!.newPid, ppid: mainPid, leaked: [] });
      expect(records.filter((r) => r.app === "term")).toEqual([{ app: "term", sender: mainPid, sluicePort: "accepted" }]);
      expect(await httpStatus("http://127.0.0.1:80/")).toBe("200");
    }), 120_000);

  test("the watchdog: sluice pings it, and the unit stays up longer than WatchdogSec", () =>
    withJournal(async () => {
      expect(activeAt).toBeGreaterThan(0);
      const watchdogMs = 10_000;
      // Time passing is the event here: 1.5 watchdog periods since the unit became active.
      await until(() => Date.now() - activeAt > watchdogMs * 1.5, 60_000, "1.5 watchdog periods");
      const props = await show(UNIT, "ActiveState", "SubState", "MainPID", "NRestarts", "WatchdogUSec", "WatchdogTimestampMonotonic", "ActiveEnterTimestampMonotonic");
      expect(props).toMatchObject({ ActiveState: "active", SubState: "running", MainPID: String(mainPid), NRestarts: "0", WatchdogUSec: "10s" });
      // The last ping came after the unit became active.
      expect(Number(props.WatchdogTimestampMonotonic)).toBeGreaterThan(Number(props.ActiveEnterTimestampMonotonic));
      const log = await managerLog(UNIT);
      const pings = notifications(log, UNIT).filter((n) => n.fields === "WATCHDOG=1");
      expect(pings.length).toBeGreaterThanOrEqual(2);
      expect(pings.every((n) => n.pid === mainPid)).toBe(true);
      expect(log.some((line) => /watchdog timeout/i.test(line))).toBe(false);
    }), 90_000);

  test("a hung sluice (SIGSTOP): the watchdog kills it, systemd kills the app it left behind, Restart=on-failure starts both again", () =>
    withJournal(async () => {
      expect(mainPid).toBeGreaterThan(0);
      const oldApp = (await serviceRecords(APP_LINE)).findLast((r) => r.app === "started")?.pid as number;
      expect(oldApp).toBeGreaterThan(0);
      const started = performance.now();
      await insideOk(["kill", "-STOP", String(mainPid)]);
      let props: Record<string, string> = {};
      await until(
        async () => {
          props = await show(UNIT, "ActiveState", "MainPID", "NRestarts");
          return props.NRestarts === "1" && props.ActiveState === "active";
        },
        60_000,
        "the unit to be restarted and active again",
      );
      const log = await managerLog(UNIT);
      const timeout = log.findIndex((line) => line === `${UNIT}: Watchdog timeout (limit 10s)!`);
      expect(timeout).toBeGreaterThanOrEqual(0);
      // Pings stopped with the process, so the timeout came no earlier than WatchdogSec after
      // (at most one ping period, 5 s, before the SIGSTOP).
      expect(performance.now() - started).toBeGreaterThanOrEqual(5_000);
      const after = log.slice(timeout);
      expect(after.some((line) => /^sluice\.service: Main process exited, code=(dumped|killed), status=6\/ABRT$/.test(line))).toBe(true);
      expect(after).toContain(`${UNIT}: Failed with result 'watchdog'.`);
      // The orphaned app was killed with the rest of the unit's control group (KillMode=mixed
      // sends the final SIGKILL to every process left), so the new app could take its port.
      expect(after).toContain(`${UNIT}: Killing process ${oldApp} (server) with signal SIGKILL.`);
      expect(after.some((line) => line.startsWith(`${UNIT}: Scheduled restart job`))).toBe(true);
      expect((await inside(["test", "-e", `/proc/${oldApp}`])).code).not.toBe(0);
      const newMain = Number(props.MainPID);
      expect(newMain).not.toBe(mainPid);
      const newApp = (await serviceRecords(APP_LINE)).findLast((r) => r.app === "started");
      expect(newApp?.pid).not.toBe(oldApp);
      expect(newApp?.ppid).toBe(newMain);
      expect(await httpStatus("http://127.0.0.1:80/")).toBe("200");
      mainPid = newMain;
    }), 90_000);

  test("systemctl stop: sluice closes its port, then signals the app itself; the unit ends inactive with status 0", () =>
    withJournal(async () => {
      expect(mainPid).toBeGreaterThan(0);
      const earlier = (await managerLog(UNIT)).length;
      // Only what this stop brings: the rolling restart's old app had its own SIGTERM.
      const termsBefore = (await serviceRecords(APP_LINE)).filter((r) => r.app === "term").length;
      const started = performance.now();
      await insideOk(["systemctl", "stop", UNIT], 90_000);
      const stopMs = performance.now() - started;
      console.log(`systemctl stop took ${Math.round(stopMs)} ms`);

      // The app's own record: SIGTERM came from sluice (the unit's main process), not from
      // systemd (PID 1 in the container), and sluice's port already refused connections.
      const records = await serviceRecords(`${APP_LINE}|"event":"shutdown.complete"`);
      const term = records.filter((r) => r.app === "term").slice(termsBefore);
      expect(term).toEqual([{ app: "term", sender: mainPid, sluicePort: "refused" }]);
      const complete = records.find((r) => r.event === "shutdown.complete");
      expect(complete).toMatchObject({ exitCode: 0, killed: 0, aborted: 0, childExitCode: 0 });

      // systemd's account of the stop: STOPPING=1 with the budget, main process exited 0,
      // nothing killed, no failure.
      const log = (await managerLog(UNIT)).slice(earlier);
      const stopping = notifications(log, UNIT).find((n) => n.fields.startsWith("STOPPING=1"));
      expect(stopping?.pid).toBe(mainPid);
      expect(stopping?.fields).toContain("EXTEND_TIMEOUT_USEC=27500000");
      expect(log).toContain(`${UNIT}: Main process exited, code=exited, status=0/SUCCESS (success)`);
      expect(log).toContain(`${UNIT}: Deactivated successfully.`);
      expect(log).toContain(`${UNIT}: Changed stop-sigterm -> dead`);
      expect(log.some((line) => /Killing process|SIGKILL|Failed with result/.test(line))).toBe(false);
      expect((await show(UNIT, "ActiveState")).ActiveState).toBe("inactive");
      // The shutdown delay (5 s) ran, and the stop ended well within TimeoutStopSec (35 s).
      expect(stopMs).toBeGreaterThanOrEqual(4_500);
      expect(stopMs).toBeLessThan(35_000);
    }), 120_000);

  test("negative control: the same unit with a binary that never sends READY=1 fails with result timeout", async () => {
    const started = performance.now();
    const start = await inside(["systemctl", "start", NO_READY_UNIT], 60_000);
    const elapsedMs = performance.now() - started;
    expect(start.code).not.toBe(0);
    expect(await show(NO_READY_UNIT, "ActiveState", "Result")).toEqual({ ActiveState: "failed", Result: "timeout" });
    // It waited for READY=1 for its TimeoutStartSec (3 s) before giving up.
    expect(elapsedMs).toBeGreaterThanOrEqual(2_500);
  }, 60_000);
});
