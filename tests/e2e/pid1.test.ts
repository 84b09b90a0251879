/**
 * @module sluice as PID 1 of its own PID namespace (a container without an init), on the binary
 * and under Deno: it reaps the orphans the kernel hands it without stealing its own child's
 * exit status, and TERM/INT/QUIT/HUP/USR2 get their usual handling (PID 1 has no default actions).
 * The control shows the test can see zombies: a PID 1 that does not reap keeps them.
 * The binary's start-over (execve at start) keeps a stop sent meanwhile, as PID 1 or not.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, childrenOf, freePort, readMetrics, ROOT, startSluice, TARGETS, track, until, zombiesUnder, type Sluice, type Target } from "../harness.ts";

const ORPHAN_APP = [BUN, join(ROOT, "tests/fixtures/orphan-app.ts")];
/** A new PID namespace (and a /proc for it) whose PID 1 is the command; killed with unshare. */
const AS_PID1 = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];

function asPid1(target: Target): Target {
  return { ...target, command: [...AS_PID1, ...target.command] };
}

/** sluice's host PID: unshare's only child, which is PID 1 inside. */
async function pid1Of(sluice: Sluice): Promise<number> {
  await until(() => childrenOf(sluice.proc.pid).length === 1, 10_000, "unshare's child");
  const pid = childrenOf(sluice.proc.pid)[0]!;
  expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^NSpid:\s+\d+\s+1$/m);
  return pid;
}

describe.each(TARGETS)("as PID 1 ($name)", (target) => {
  test("reaps 1,110 orphaned descendants, none left a zombie, and still gets its own child's exit code", async () => {
    const sluice = await startSluice(asPid1(target), { child: ORPHAN_APP, args: ["--log-level", "debug"] });
    const pid1 = await pid1Of(sluice);
    expect(sluice.events("init.reaping")).toHaveLength(1);

    const { orphans } = (await (await fetch(`${sluice.url}/orphans?tree=10,10,10`)).json()) as { orphans: number };
    expect(orphans).toBe(1110);
    await until(async () => (await readMetrics(sluice)).sluice_orphans_reaped_total! >= orphans, 90_000, "every orphan reaped");
    expect((await readMetrics(sluice)).sluice_orphans_reaped_total).toBe(orphans);
    expect(zombiesUnder(pid1)).toBe(0);

    // The app's own exit status reaches sluice: reaping never collected its child.
    await fetch(`${sluice.url}/exit?code=3`);
    expect(await sluice.exitCode(30_000)).toBe(3);
    expect(sluice.events("shutdown.complete")[0]?.childExitCode).toBe(3);
  }, 180_000);

  test.each(["SIGTERM", "SIGINT"] as const)("%s stops it in order and it exits 0; SIGHUP reloads", async (signal) => {
    const sluice = await startSluice(asPid1(target), { args: ["--shutdown-delay", "200ms"] });
    const pid1 = await pid1Of(sluice);
    process.kill(pid1, "SIGHUP");
    await sluice.waitFor("reload", 30_000);
    process.kill(pid1, signal);
    expect(await sluice.exitCode(30_000)).toBe(0);
    const complete = sluice.events("shutdown.complete")[0]!;
    expect(complete.reason).toBe(signal);
    expect(complete.childExitCode).toBe(0);
  }, 120_000);

  test("SIGUSR2 (docker kill --signal=USR2) runs a rolling restart: the old child is collected, not left a zombie", async () => {
    const sluice = await startSluice(asPid1(target), { args: ["--shutdown-delay", "0"] });
    const pid1 = await pid1Of(sluice);
    const [oldChild] = childrenOf(pid1);
    process.kill(pid1, "SIGUSR2");
    expect(await sluice.waitFor("rolling-restart", 30_000)).toMatchObject({ result: "ok", exitCode: 0 });
    const children = childrenOf(pid1);
    expect(children).toHaveLength(1);
    expect(children[0]).not.toBe(oldChild);
    expect(zombiesUnder(pid1)).toBe(0);
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    process.kill(pid1, "SIGTERM");
    expect(await sluice.exitCode(30_000)).toBe(0);
  }, 120_000);

  test("a SIGTERM while it is still starting (reading its configuration) is not lost: it stops, exiting 0", async () => {
    // As PID 1 a signal without a handler is dropped by the kernel, not acted on. The
    // configuration comes from a FIFO: the writer's open returns once sluice opens it to
    // read, so the SIGTERM lands exactly while sluice is still starting.
    const dir = mkdtempSync(join(tmpdir(), "sluice-pid1-"));
    try {
      const fifo = join(dir, "sluice.toml");
      const mkfifo = Bun.spawn(["mkfifo", fifo]);
      expect(await mkfifo.exited).toBe(0);
      const sluice = await startSluice(asPid1(target), { args: ["--config", fifo, "--shutdown-delay", "0"], waitReady: false });
      const pid1 = await pid1Of(sluice);
      const writer = Bun.spawn(["sh", "-c", `exec 3>"$1"; kill -TERM "$2"; printf 'drain-timeout = "1s"\n' >&3`, "sh", fifo, String(pid1)]);
      track(writer.pid);
      expect(await writer.exited).toBe(0);
      expect(await sluice.exitCode(30_000)).toBe(0);
      expect(sluice.events("shutdown.complete")[0]?.reason).toBe("SIGTERM");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("a SIGHUP while it is still starting is kept: it reloads once started", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-pid1-"));
    try {
      const fifo = join(dir, "sluice.toml");
      expect(await Bun.spawn(["mkfifo", fifo]).exited).toBe(0);
      const sluice = await startSluice(asPid1(target), { args: ["--config", fifo, "--shutdown-delay", "0"], waitReady: false });
      const pid1 = await pid1Of(sluice);
      const writer = Bun.spawn(["sh", "-c", `exec 3>"$1"; kill -HUP "$2"; printf 'drain-timeout = "1s"\n' >&3`, "sh", fifo, String(pid1)]);
      track(writer.pid);
      expect(await writer.exited).toBe(0);
      await sluice.waitFor("ready", 60_000);
      // The reload ran (and failed: a FIFO is read once, at start), and sluice serves on.
      expect((await sluice.waitFor("reload", 30_000)).result).toBe("error");
      process.kill(pid1, "SIGTERM");
      expect(await sluice.exitCode(30_000)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("SIGQUIT stops it at once with 75", async () => {
    const sluice = await startSluice(asPid1(target), { args: ["--shutdown-delay", "30s"] });
    process.kill(await pid1Of(sluice), "SIGQUIT");
    expect(await sluice.exitCode(30_000)).toBe(75);
  }, 120_000);
});

describe("the binary's start-over", () => {
  const binary = TARGETS.find((target) => target.name === "binary")!;
  const SIGTERM_BIT = 1n << 14n; // signal 15 in /proc/<pid>/status's masks

  /**
   * Sends SIGTERM to `pid` in the gap the start-over (runtime/allocator-bun.ts) opens: the new
   * image has begun (its environment names the start-over) and has no SIGTERM handler yet, for
   * the tens of milliseconds Bun takes to load sluice. Spins without awaiting to catch it.
   * Returns false when the handler was there before the signal could go.
   */
  function signalWhileStartingOver(pid: () => number, deadlineMs: number): boolean {
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      const target = pid();
      if (target === 0) continue;
      let environ: string;
      let status: string;
      try {
        environ = readFileSync(`/proc/${target}/environ`, "latin1");
        status = readFileSync(`/proc/${target}/status`, "utf8");
      } catch {
        continue; // gone, or not yet readable
      }
      if (!environ.includes("\0_SLUICE_SET_PURGE_DELAY=1")) continue;
      const caught = BigInt(`0x${/^SigCgt:\s+(\w+)/m.exec(status)![1]}`);
      if ((caught & SIGTERM_BIT) !== 0n) return false;
      process.kill(target, "SIGTERM");
      return true;
    }
    throw new Error(`sluice did not start over within ${deadlineMs} ms`);
  }

  test.each([
    // The kernel drops a signal without a handler sent to PID 1: the build before went on serving.
    { as: "PID 1", target: asPid1(binary), pid: (sluice: Sluice) => childrenOf(sluice.proc.pid)[0] ?? 0 },
    // Elsewhere its default action ended the build before with 143.
    { as: "not PID 1", target: binary, pid: (sluice: Sluice) => sluice.proc.pid },
  ])("a SIGTERM sent before the new image has its handlers is kept: it stops in order, exiting 0 ($as)", async ({ target, pid }) => {
    // The gap is tens of milliseconds: a busy machine may still let the handler in first.
    for (let attempt = 1; ; attempt++) {
      // A purge delay set in the environment would be the user's: no start-over then.
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], waitReady: false, env: { MIMALLOC_PURGE_DELAY: undefined } });
      const sent = signalWhileStartingOver(() => pid(sluice), 30_000);
      if (!sent && attempt < 5) {
        sluice.signal("SIGKILL");
        await sluice.exitCode(30_000);
        continue;
      }
      expect(sent).toBe(true);
      expect(await sluice.exitCode(30_000)).toBe(0);
      expect(sluice.events("shutdown.complete")[0]).toMatchObject({ reason: "SIGTERM" });
      return;
    }
  }, 180_000);
});

test("control: a PID 1 that does not reap is left with the zombies", async () => {
  const port = freePort();
  const proc = Bun.spawn([...AS_PID1, ...ORPHAN_APP], { env: { ...process.env, PORT: String(port) }, stdout: "ignore", stderr: "inherit" });
  track(proc.pid);
  await until(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false), 30_000, "the app");
  const app = childrenOf(proc.pid)[0]!;
  const { orphans } = (await (await fetch(`http://127.0.0.1:${port}/orphans?tree=10,10,10`)).json()) as { orphans: number };
  await until(() => zombiesUnder(app) === orphans, 90_000, `${orphans} zombies`);
  proc.kill("SIGKILL"); // --kill-child takes the namespace down with it
  await proc.exited;
}, 180_000);
