/**
 * @module SIGUSR2's rolling restart against what else happens meanwhile, end to end on both
 * targets (the races scripts/fuzz/lifecycle.ts fires at): here, the old child dying on a
 * request after requests moved to the new child.
 */

import { describe, expect, test } from "bun:test";
import { readMetrics, startSluice, TARGETS, until } from "../harness.ts";

for (const target of TARGETS) {
  describe(`rolling restart races (${target.name})`, () => {
    // Without a rolling restart such a GET waits for the restarted child (--restart), or gets
    // 502 when none is coming; here the child requests go to is ready already. It waited 1 s
    // for a comeback of the old child that never comes (it no longer counts), then got 502.
    for (const restart of ["never", "always"]) {
      test(`a GET the old child dies on after the switch goes at once to the new child (--restart ${restart})`, async () => {
        const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--restart", restart] });
        const oldPid = sluice.childPid!;
        const slow = fetch(`${sluice.url}/slow?ms=3000`).then(async (r) => `${r.status} ${await r.text()}`);
        await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the slow request in flight");
        sluice.signal("SIGUSR2");
        const ready = await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== oldPid, 30_000);
        // The old child dies with the GET in flight, before answering a byte.
        process.kill(oldPid, "SIGKILL");
        expect(await slow).toBe("200 slow 3000\n");
        // The new child answered it.
        expect(await (await fetch(`${sluice.url}/seen`)).json()).toContain("/slow?ms=3000");
        const record = await sluice.waitFor("rolling-restart", 30_000);
        expect(record).toMatchObject({ result: "ok", pid: oldPid, newPid: ready.pid, aborted: 0 });
        expect(sluice.events("access").map((r) => r.status)).not.toContain(502);
        sluice.signal("SIGTERM");
        expect(await sluice.exitCode()).toBe(0);
        expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
      }, 120_000);
    }
  });
}
