/**
 * @module SIGUSR2, the rolling restart, end to end on both targets: a new child on a port of
 * its own takes the new requests once it is ready, the old one finishes what it has in
 * flight and only then gets its stop signal; a new child that never gets ready is stopped
 * and the old one goes on serving; a stop in the middle stops both.
 */

import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { appStartingDifferently, BUN, freePort, groupRunning, loadUntil, type LogRecord, readMetrics, ROOT, type Sluice, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

const APP = join(ROOT, "tests/fixtures/app.ts");

/** Runs deploy/rolling-restart.sh with `args`, sending SIGUSR2 to `sluice` itself (bounded). */
async function deployScript(sluice: Sluice, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["sh", join(ROOT, "deploy/rolling-restart.sh"), ...args, "--", "kill", "-USR2", String(sluice.proc.pid)], {
    stdin: "ignore", stdout: "pipe", stderr: "pipe",
  });
  track(proc.pid);
  const timer = setTimeout(() => proc.kill("SIGKILL"), 90_000);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function termProbes(file: string): LogRecord[] {
  return readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line));
}

for (const target of TARGETS) {
  describe(`rolling restart (${target.name})`, () => {
    test("SIGUSR2 under load: no failed request, new requests go to a new child on its own port, the old one finishes its slow request before its SIGTERM", async () => {
      const records = join(tempDir(), "term.jsonl");
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0"],
        env: { APP_ON_TERM: "probe", RECORD_FILE: records },
      });
      const oldPid = sluice.childPid!;
      // Runs on the old child across the switch.
      const slow = fetch(`${sluice.url}/slow?ms=3000`).then(async (r) => `${r.status} ${await r.text()}`);
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
      const done = sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      sluice.signal("SIGUSR2");
      const load = await loadUntil(sluice, done);
      const record = await done;
      expect(await slow).toBe("200 slow 3000\n");

      const newPid = sluice.childPid!;
      expect(newPid).not.toBe(oldPid);
      expect(record).toMatchObject({ result: "ok", pid: oldPid, newPid, aborted: 0, killed: 0, exitCode: 0 });
      // The slow request, and the load's requests that were on the old child at the switch.
      expect(record.drained).toBeGreaterThanOrEqual(1);
      // Every request was answered, by one child or the other; /readyz never failed.
      expect(load.answers.filter((a) => !a.startsWith("pid ")).slice(0, 5)).toEqual([]);
      expect(new Set(load.answers)).toEqual(new Set([`pid ${oldPid}`, `pid ${newPid}`]));
      expect(load.notReady).toBe(0);
      // The old child heard of its stop with nothing in flight, while sluice still served.
      expect(termProbes(records)).toEqual([{ probe: "term", sluicePort: "accepted", inFlight: 0 }]);
      expect(groupRunning(oldPid)).toBe(false);

      // The new child listens on the port it was given, not --target-port.
      const env = await (await fetch(`${sluice.url}/env`)).json() as Record<string, string>;
      expect(Number(env.PORT)).toBe(record.port as number);
      expect(env.PORT).not.toBe(String(sluice.targetPort));
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(newPid));
      expect((await readMetrics(sluice))['sluice_rolling_restarts_total{result="ok"}']).toBe(1);

      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0, killed: 0 });
      expect(termProbes(records).at(-1)).toEqual({ probe: "term", sluicePort: "refused", inFlight: 0 });
    }, 120_000);

    test("a request on the old child still running at --drain-timeout is cut (503) before the old child is stopped", async () => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "500ms"] });
      const oldPid = sluice.childPid!;
      const slow = fetch(`${sluice.url}/slow?ms=20000`).then((r) => r.status);
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "ok", pid: oldPid, drained: 0, aborted: 1, killed: 0 });
      expect(await slow).toBe(503);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(record.newPid));
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("a stop after the rolling restart signalled its old child (which ignores it) says so, and the stop SIGKILLs both at --stop-timeout", async () => {
      const records = join(tempDir(), "term.jsonl");
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--stop-timeout", "1s"],
        env: { APP_ON_TERM: "ignore", RECORD_FILE: records },
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      await until(() => existsSync(records) && readFileSync(records, "utf8").includes(`"pid":${oldPid}`), 30_000, "the old child's SIGTERM");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(75);
      const interrupted = sluice.events("rolling-restart");
      expect(interrupted).toMatchObject([{ result: "interrupted", pid: oldPid, oldChildSignalled: true, drained: 0, aborted: 0 }]);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 75, killed: 2 });
      expect(groupRunning(oldPid)).toBe(false);
      expect(groupRunning(interrupted[0]!.newPid as number)).toBe(false);
    }, 120_000);

    test("the old child crashing during a rolling restart: --restart on-failure brings it back, held requests are served, the rolling restart fails saying why", async () => {
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--restart", "on-failure"],
        // Every child after the first listens 2 s late: the old one dies while the new one starts.
        child: appStartingDifferently("export APP_BIND_DELAY_MS=2000"),
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const replacement = await sluice.waitFor((r) => r.event === "child.started" && r.pid !== oldPid, 30_000);
      process.kill(oldPid, "SIGKILL");
      await sluice.waitFor((r) => r.event === "child.exited" && r.pid === oldPid, 30_000);
      // Held until a child is ready again, then served.
      const held = await fetch(`${sluice.url}/pid`);
      expect(held.status).toBe(200);
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "failed", pid: oldPid, newPid: replacement.pid });
      expect(record.reason).toBe(`The child it was to replace (pid ${oldPid}) exited meanwhile`);
      await until(() => !groupRunning(replacement.pid as number), 15_000, "the replacement's group to be gone");
      const restarted = sluice.events("child.started").at(-1)!;
      expect(restarted.pid).not.toBe(replacement.pid);
      expect(restarted.port).toBe(sluice.targetPort);
      expect(await held.text()).toBe(String(restarted.pid));
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("SIGUSR2s during a rolling restart run one more after it", async () => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
      const first = sluice.childPid!;
      // Holds the first rolling restart in its drain while two more signals come (one at a
      // time: the kernel keeps only one of a signal pending).
      const slow = fetch(`${sluice.url}/slow?ms=2000`).then((r) => r.status);
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
      sluice.signal("SIGUSR2");
      await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== first, 30_000);
      for (const count of [2, 3]) {
        sluice.signal("SIGUSR2");
        await until(() => sluice.events("signal").length === count, 10_000, `SIGUSR2 number ${count}`);
      }
      expect(sluice.events("rolling-restart")).toEqual([]);
      expect(await slow).toBe(200);
      await sluice.waitFor((r) => r.event === "rolling-restart" && r.pid !== first, 60_000);
      const results = sluice.events("rolling-restart");
      expect(results.map((r) => r.result)).toEqual(["ok", "ok"]);
      expect(results[1]!.pid).toBe(results[0]!.newPid);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(results[1]!.newPid));
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(sluice.events("rolling-restart.begin")).toHaveLength(2);
    }, 120_000);

    test("a new child that exits before it is ready (it ignores PORT) is reported, and the old one goes on serving", async () => {
      const fixed = freePort();
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--target-port", String(fixed)],
        // The app binds --target-port whatever PORT says: the new child finds it taken.
        child: ["sh", "-c", `PORT=${fixed} exec "$0" "$@"`, BUN, APP],
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "failed", pid: oldPid });
      expect(record.reason).toMatch(/^The new child \(pid \d+, PORT=\d+\) exited with code [1-9]\d* before it was ready$/);
      expect(groupRunning(record.newPid as number)).toBe(false);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(oldPid));
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
      expect((await readMetrics(sluice))['sluice_rolling_restarts_total{result="failed"}']).toBe(1);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("a new child not ready within --ready-timeout is stopped, and the old one goes on serving", async () => {
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--ready-timeout", "1500ms"],
        child: appStartingDifferently("export APP_BIND_DELAY_MS=60000"),
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "failed", pid: oldPid });
      expect(record.reason).toContain("was not ready within --ready-timeout 1.5s");
      // It was stopped with --stop-signal, as a child is at a stop.
      // Its group can be gone a moment before sluice has reaped it and logged the exit.
      await until(() => !groupRunning(record.newPid as number), 15_000, "the new child's group to be gone");
      await sluice.waitFor((r) => r.event === "child.exited" && r.pid === record.newPid, 15_000);
      expect(sluice.events("child.exited").map((r) => r.pid)).toEqual([record.newPid]);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(oldPid));
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("a child that waits for its clients' connections to close is not kept waiting by sluice's idle ones: a failed new child, and at the stop", async () => {
      // The app exits at SIGTERM only once its clients have closed their connections: the
      // probe's keep-alive connection, left in sluice's pool, held it for the pool's 1.5 s
      // (4 s once), then until sluice's FIN was answered.
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--ready-path", "/ready", "--ready-timeout", "1500ms", "--stop-timeout", "20s"],
        child: [BUN, join(ROOT, "tests/fixtures/keepalive-app.ts")],
        env: { STARTED_MARK: join(tempDir(), "started") },
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "failed", pid: oldPid });
      const exited = await sluice.waitFor((r) => r.event === "child.exited" && r.pid === record.newPid, 30_000);
      expect(exited).toMatchObject({ code: 0 });
      expect(Date.parse(exited["@timestamp"] as string) - Date.parse(record["@timestamp"] as string)).toBeLessThan(1200);
      // So does sluice's own stop: the connection that served this is idle in the pool.
      expect((await fetch(`${sluice.url}/`)).status).toBe(200);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      const complete = sluice.events("shutdown.complete")[0]!;
      expect((complete.phases as Record<string, number>)["stop-child"]).toBeLessThan(1200);
    }, 120_000);

    test("a reload's --ready-path and --ready-timeout apply to the next rolling restart's new child", async () => {
      // Every child after the first hangs on /ready: only the reloaded ready-path finds it ready.
      const config = join(tempDir(), "sluice.toml");
      writeFileSync(config, 'shutdown-delay = "0s"\nready-path = "/ready"\n');
      const sluice = await startSluice(target, { args: ["--config", config], child: appStartingDifferently("export APP_READY_HANG=1") });
      const firstPid = sluice.childPid!;
      const reload = async (lines: string): Promise<LogRecord> => {
        writeFileSync(config, lines);
        const count = sluice.events("reload").length;
        sluice.signal("SIGHUP");
        await until(() => sluice.events("reload").length > count, 30_000, "the reload");
        return sluice.events("reload").at(-1)!;
      };
      expect(await reload('shutdown-delay = "0s"\nready-path = "/pid"\n')).toMatchObject({ result: "ok", changed: ["ready-path"], pendingRestart: [] });
      sluice.signal("SIGUSR2");
      const first = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(first).toMatchObject({ result: "ok", pid: firstPid });
      const secondPid = first.newPid as number;
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(secondPid));

      // Back to /ready, and a shorter wait for it: the next new child is given up after 1.5 s.
      expect(await reload('shutdown-delay = "0s"\nready-path = "/ready"\nready-timeout = "1500ms"\n'))
        .toMatchObject({ result: "ok", changed: ["ready-path", "ready-timeout"], pendingRestart: [] });
      sluice.signal("SIGUSR2");
      const second = await sluice.waitFor((r) => r.event === "rolling-restart" && r !== first, 60_000);
      expect(second).toMatchObject({ result: "failed", pid: secondPid });
      // Named where the reload set it: the file's line.
      expect(second.reason).toContain(`was not ready within ${config} line 3 (ready-timeout) 1.5s (waiting for GET /ready on 127.0.0.1:`);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(secondPid));
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("the response cache is emptied when the new child takes over, and what the old child answers after the switch is not stored", async () => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
      const get = async (path: string) => {
        const response = await fetch(`${sluice.url}${path}`);
        return `${response.status} ${response.headers.get("x-cache")} ${(await response.text()).split("\n")[0]}`;
      };
      expect(await get("/cacheable?bytes=10")).toBe("200 miss served 1");
      expect(await get("/cacheable?bytes=10")).toBe("200 hit served 1");
      // On the old child across the switch, answered after it.
      const slow = get("/cacheable?bytes=10&ms=2500");
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
      expect(record).toMatchObject({ result: "ok", cacheCleared: 1, drained: 1 });
      expect(await slow).toBe("200 miss served 1");
      // The new child's own counts: each page is its first.
      expect(await get("/cacheable?bytes=10")).toBe("200 miss served 1");
      expect(await get("/cacheable?bytes=10")).toBe("200 hit served 1");
      expect(await get("/cacheable?bytes=10&ms=2500")).toBe("200 miss served 1");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("deploy/rolling-restart.sh: exit 0 once a rolling restart is ok, 1 when it failed, 2 when it cannot read /metrics", async () => {
      // The second child gets ready; the third never listens.
      const mark = join(tempDir(), "second-started");
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--ready-timeout", "1500ms"],
        child: appStartingDifferently(`if [ -e ${mark} ]; then export APP_BIND_DELAY_MS=60000; fi; touch ${mark}`),
      });
      const firstPid = sluice.childPid!;
      const ok = await deployScript(sluice, ["--admin", sluice.adminUrl, "--timeout", "60"]);
      expect(ok).toEqual({ code: 0, stdout: "rolling restart ok: the new child serves\n", stderr: "" });
      const [record] = sluice.events("rolling-restart");
      expect(record).toMatchObject({ result: "ok", pid: firstPid });

      const failed = await deployScript(sluice, ["--admin", sluice.adminUrl, "--timeout", "60"]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toBe('rolling restart: failed (sluice\'s log, event "rolling-restart", says why)\n');
      expect(sluice.events("rolling-restart").map((r) => r.result)).toEqual(["ok", "failed"]);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(record!.newPid));

      // Nothing listens there: nothing is sent either.
      const unreadable = await deployScript(sluice, ["--admin", `http://127.0.0.1:${freePort()}`]);
      expect(unreadable.code).toBe(2);
      expect(unreadable.stderr).toContain("cannot read http://127.0.0.1:");
      const usage = await deployScript(sluice, ["--timeout", "soon"]);
      expect(usage).toMatchObject({ code: 2, stderr: 'rolling-restart.sh: --timeout must be a whole number of seconds, not "soon"\n' });
      expect(sluice.events("rolling-restart.begin").length).toBe(2);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("SIGUSR2 before sluice is ready is skipped, and counted", async () => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], env: { APP_BIND_DELAY_MS: "3000" }, waitReady: false });
      await sluice.waitFor("child.started", 30_000);
      sluice.signal("SIGUSR2");
      const record = await sluice.waitFor("rolling-restart", 30_000);
      expect(record).toMatchObject({ result: "skipped", reason: "sluice is not ready yet (the child it is starting runs the new code)" });
      await sluice.waitFor("ready", 60_000);
      expect((await readMetrics(sluice))['sluice_rolling_restarts_total{result="skipped"}']).toBe(1);
      expect(sluice.events("child.started").length).toBe(1);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    test("a stop during a rolling restart (the new child's --ready-path hangs) stops both children, says so before its last record, and exits 0", async () => {
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--ready-path", "/ready"],
        child: appStartingDifferently("export APP_READY_HANG=1"),
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const started = await sluice.waitFor((r) => r.event === "child.started" && r.pid !== oldPid, 30_000);
      // Stopped while sluice's probe of /ready hangs in the new child.
      await until(async () => {
        const inFlight = await fetch(`http://127.0.0.1:${started.port}/in-flight`).then((r) => r.text(), () => "0");
        return Number(inFlight) >= 1;
      }, 30_000, "a ready probe hanging in the new child");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0, killed: 0, childExitCode: 0 });
      expect(sluice.events("rolling-restart")).toMatchObject([{ result: "abandoned", pid: oldPid }]);
      expect(groupRunning(oldPid)).toBe(false);
      expect(groupRunning(started.pid as number)).toBe(false);
    }, 120_000);
  });
}
