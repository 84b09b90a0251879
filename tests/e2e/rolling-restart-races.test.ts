/**
 * @module SIGUSR2's rolling restart against what else happens meanwhile, end to end on both
 * targets (the races scripts/fuzz/lifecycle.ts fires at): the old child dying on a request
 * after requests moved to the new child; the old child crashing while a new child that
 * ignores PORT waits to take its port; the new child exiting after it took over.
 */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { appStartingDifferently, BUN, freePort, groupRunning, readMetrics, ROOT, startSluice, TARGETS, tempDir, until } from "../harness.ts";

const APP = join(ROOT, "tests/fixtures/app.ts");

for (const target of TARGETS) {
  describe(`rolling restart races (${target.name})`, () => {
    // Without a rolling restart such a GET waits for the restarted child (--restart), or gets
    // 502 when none is coming; here the child requests go to is ready already. It waited 1 s
    // for a comeback of the old child that never comes (it no longer counts), then got 502.
    for (const restart of ["never", "always"]) {
      test(`a GET the old child dies on after the switch goes at once to the new child (--restart ${restart})`, async () => {
        const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--restart", restart] });
        const oldPid = sluice.childPid!;
        let answered = false;
        const slow = fetch(`${sluice.url}/slow?ms=6000`).then(async (r) => `${r.status} ${await r.text()}`).finally(() => (answered = true));
        await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
        sluice.signal("SIGUSR2");
        const ready = await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== oldPid, 30_000);
        // The old child dies with the GET in flight, before answering a byte.
        process.kill(oldPid, "SIGKILL");
        // Sent again, it is no longer the old child's: the rolling restart does not wait for
        // it (it did, up to --drain-timeout, before stopping a child that was gone).
        const record = await sluice.waitFor("rolling-restart", 30_000);
        expect(answered).toBe(false);
        expect(record).toMatchObject({ result: "ok", pid: oldPid, newPid: ready.pid, drained: 1, aborted: 0 });
        expect(await slow).toBe("200 slow 6000\n");
        // The new child answered it.
        expect(await (await fetch(`${sluice.url}/seen`)).json()).toContain("/slow?ms=6000");
        expect(sluice.events("access").map((r) => r.status)).not.toContain(502);
        sluice.signal("SIGTERM");
        expect(await sluice.exitCode()).toBe(0);
        expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
      }, 120_000);
    }

    // An app that takes its port from its own configuration: its new child waits for the
    // port the old one holds. The old child crashing then freed it, the new child took it
    // before the restart's backoff ended, and the restart found "another process" on
    // --target-port: restart failed, sluice stopped with 78 while it could serve.
    test("the old child crashing while a new child that ignores PORT waits for its port: the restart waits for that child's stop, and serves (--restart always)", async () => {
      const fixed = freePort();
      const mark = join(tempDir(), "started");
      // Every child but the first waits until nothing listens on the fixed port, then listens there.
      const waitForPort = `while (exec 3<>/dev/tcp/127.0.0.1/${fixed}) 2>/dev/null; do sleep 0.02; done`;
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--target-port", String(fixed), "--restart", "always"],
        child: ["bash", "-c", `if [ -e ${mark} ]; then ${waitForPort}; fi; touch ${mark}; PORT=${fixed} exec "$0" "$@"`, BUN, APP],
      });
      const oldPid = sluice.childPid!;
      sluice.signal("SIGUSR2");
      const started = await sluice.waitFor((r) => r.event === "child.started" && r.pid !== oldPid, 30_000);
      process.kill(oldPid, "SIGKILL");
      const record = await sluice.waitFor("rolling-restart", 30_000);
      expect(record).toMatchObject({ result: "failed", pid: oldPid, newPid: started.pid });
      expect(record.reason).toBe(`The child it was to replace (pid ${oldPid}) exited meanwhile`);
      // The restarted child serves, on --target-port.
      const restarted = await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== oldPid && r.pid !== started.pid, 30_000);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(restarted.pid));
      expect(groupRunning(started.pid as number)).toBe(false);
      expect(sluice.events("child.restart-failed")).toEqual([]);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);

    // It was counted ok, its record and STATUS= said "child <dead pid> replaced child <old>",
    // and deploy/rolling-restart.sh said "the new child serves" while the new code crashed.
    test("the new child exiting after it took over, while the old child finishes its requests: the rolling restart failed, saying so (--restart on-failure)", async () => {
      const crashed = join(tempDir(), "crashed");
      const sluice = await startSluice(target, {
        args: ["--shutdown-delay", "0", "--restart", "on-failure"],
        // The second child (the rolling restart's new one) exits 3 half a second after it started; the ones after it stay.
        child: appStartingDifferently(`if [ ! -e ${crashed} ]; then touch ${crashed}; export APP_EXIT_AFTER_MS=500 APP_EXIT_CODE=3; fi`),
      });
      const oldPid = sluice.childPid!;
      // Keeps the old child's drain going past the new child's exit.
      const slow = fetch(`${sluice.url}/slow?ms=2500`).then(async (r) => `${r.status} ${await r.text()}`);
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
      sluice.signal("SIGUSR2");
      const started = await sluice.waitFor((r) => r.event === "child.started" && r.pid !== oldPid, 30_000);
      const record = await sluice.waitFor("rolling-restart", 30_000);
      expect(await slow).toBe("200 slow 2500\n");
      expect(record).toMatchObject({ result: "failed", pid: oldPid, newPid: started.pid, drained: 1, aborted: 0, killed: 0 });
      expect(record.reason).toBe(
        `The new child (pid ${started.pid}, PORT=${record.port}) exited with code 3 after it took over; child ${oldPid} was stopped all the same after its drain`,
      );
      const metrics = await readMetrics(sluice);
      expect(metrics['sluice_rolling_restarts_total{result="ok"}']).toBe(0);
      expect(metrics['sluice_rolling_restarts_total{result="failed"}']).toBe(1);
      // The new code, restarted, serves.
      const restarted = await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== oldPid && r.pid !== started.pid, 30_000);
      expect(await (await fetch(`${sluice.url}/pid`)).text()).toBe(String(restarted.pid));
      expect(groupRunning(oldPid)).toBe(false);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 120_000);
  });
}
