/**
 * @module sd_notify end to end: READY=1 only once the child is ready, watchdog pings at half of
 * WATCHDOG_USEC, RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload, STOPPING=1
 * with EXTEND_TIMEOUT_USEC at the start of the stop, STATUS= through a rolling restart, and
 * NOTIFY_SOCKET/WATCHDOG_USEC kept from the child.
 */

import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { appStartingDifferently, readLines, ROOT, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

/** Starts the datagram listener; `messages` fills as datagrams arrive. */
async function listen(path: string) {
  const proc = Bun.spawn(["python3", join(ROOT, "tests/fixtures/notify-listener.py"), path], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  track(proc.pid);
  const messages: { text: string; at: number; monotonicUsec: number }[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  void readLines(proc.stdout as ReadableStream<Uint8Array>, (line) => {
    if (line === "ready") ready();
    else messages.push({ ...JSON.parse(line), at: performance.now() });
  });
  await isReady;
  return { messages, stop: () => proc.stdin.end() };
}

describe.each(TARGETS)("systemd notify ($name)", (target) => {
  test("READY=1 after the child is ready, watchdog pings, RELOADING=1 then READY=1 on reload, STOPPING=1 at the stop", async () => {
    const path = join(tempDir(), "notify.sock");
    const listener = await listen(path);
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "1500ms", "--drain-timeout", "5s", "--stop-timeout", "3s", "--flush-timeout", "1s"],
      env: { NOTIFY_SOCKET: path, WATCHDOG_USEC: "400000", APP_BIND_DELAY_MS: "500" },
      waitReady: false,
    });
    const ready = await sluice.waitFor("ready", 30_000);
    await until(() => listener.messages.some((m) => m.text.startsWith("READY=1")), 10_000, "READY=1");
    const readyMessage = listener.messages.find((m) => m.text.startsWith("READY=1"))!;
    expect(readyMessage.text).toContain(`STATUS=serving on 127.0.0.1:${sluice.httpPort}`);
    // Nothing said READY before the child was ready.
    expect(listener.messages[0]!.text.startsWith("READY=1")).toBe(true);
    expect(sluice.records.indexOf(ready)).toBeGreaterThan(sluice.records.findIndex((r) => r.event === "child.ready"));

    // Watchdog every 200 ms (half of 400 ms): at least 3 pings within a second or so.
    await until(() => listener.messages.filter((m) => m.text === "WATCHDOG=1").length >= 3, 10_000, "3 watchdog pings");
    const pings = listener.messages.filter((m) => m.text === "WATCHDOG=1").map((m) => m.at);
    for (let i = 1; i < pings.length; i++) expect(pings[i]! - pings[i - 1]!).toBeLessThan(400);

    // The child never sees the notify socket or the watchdog settings.
    const env = (await (await fetch(`${sluice.url}/env`)).json()) as Record<string, string>;
    expect(env.NOTIFY_SOCKET).toBeUndefined();
    expect(env.WATCHDOG_USEC).toBeUndefined();

    // A reload: RELOADING=1 with CLOCK_MONOTONIC (as Type=notify-reload requires), then READY=1.
    sluice.signal("SIGHUP");
    await sluice.waitFor("reload");
    await until(() => listener.messages.filter((m) => m.text.startsWith("READY=1")).length >= 2, 10_000, "READY=1 after the reload");
    const reloading = listener.messages.find((m) => m.text.startsWith("RELOADING=1"))!;
    const stamp = Number(/MONOTONIC_USEC=(\d+)/.exec(reloading.text)?.[1]);
    // Sent before it was received, and not long before.
    expect(stamp).toBeLessThanOrEqual(reloading.monotonicUsec);
    expect(reloading.monotonicUsec - stamp).toBeLessThan(5_000_000);
    const order = listener.messages.map((m) => m.text.split("\n")[0]).filter((t) => t !== "WATCHDOG=1");
    expect(order).toEqual(["READY=1", "RELOADING=1", "READY=1"]);

    sluice.signal("SIGTERM");
    await until(() => listener.messages.some((m) => m.text.startsWith("STOPPING=1")), 10_000, "STOPPING=1");
    const stopping = listener.messages.find((m) => m.text.startsWith("STOPPING=1"))!;
    // The whole stop budget: 1.5 s + 5 s + 0.5 s close-grace + 3 s + 1 s.
    expect(stopping.text).toContain("EXTEND_TIMEOUT_USEC=11000000");
    expect(await sluice.exitCode()).toBe(0);
    listener.stop();
  }, 60_000);

  test("a reload still under way when the stop begins is abandoned, and nothing says READY=1 after STOPPING=1", async () => {
    const path = join(tempDir(), "notify.sock");
    const listener = await listen(path);
    const config = join(tempDir(), "sluice.toml");
    writeFileSync(config, "shutdown-delay = \"3s\"\n");
    const sluice = await startSluice(target, {
      args: ["--config", config],
      env: { NOTIFY_SOCKET: path },
    });
    await until(() => listener.messages.some((m) => m.text.startsWith("READY=1")), 10_000, "READY=1");
    // The reload reads its file from a FIFO: it waits there until the test writes to it. (An
    // error page that is a FIFO is refused before it is read.)
    rmSync(config);
    expect(spawnSync("mkfifo", [config]).status).toBe(0);
    sluice.signal("SIGHUP");
    await until(() => listener.messages.some((m) => m.text.startsWith("RELOADING=1")), 10_000, "RELOADING=1");
    sluice.signal("SIGTERM");
    await until(() => listener.messages.some((m) => m.text.startsWith("STOPPING=1")), 10_000, "STOPPING=1");
    writeFileSync(config, "shutdown-delay = \"3s\"\n");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.events("reload")).toMatchObject([{ result: "abandoned" }]);
    const order = listener.messages.map((m) => m.text.split("\n")[0]);
    expect(order.slice(order.indexOf("STOPPING=1") + 1)).toEqual([]);
    listener.stop();
  }, 60_000);

  test("a rolling restart shows in STATUS= (what `systemctl status` prints): its progress, then how it went, also after a reload", async () => {
    const path = join(tempDir(), "notify.sock");
    const listener = await listen(path);
    // The second child gets ready; the third never listens.
    const mark = join(tempDir(), "second-started");
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--ready-timeout", "2s"],
      env: { NOTIFY_SOCKET: path },
      child: appStartingDifferently(`if [ -e ${mark} ]; then export APP_BIND_DELAY_MS=60000; fi; touch ${mark}`),
    });
    await until(() => listener.messages.some((m) => m.text.startsWith("READY=1")), 10_000, "READY=1");
    const serving = `serving on 127.0.0.1:${sluice.httpPort}`;
    const statuses = () => listener.messages.filter((m) => m.text.startsWith("STATUS=")).map((m) => m.text.slice("STATUS=".length));
    const firstPid = sluice.childPid!;
    sluice.signal("SIGUSR2");
    const ok = await sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
    expect(ok).toMatchObject({ result: "ok" });
    const { newPid, port } = ok;
    await until(() => statuses().length === 3, 10_000, "three STATUS= messages");
    expect(statuses()).toEqual([
      `rolling restart: starting a new child beside child ${firstPid}`,
      `rolling restart: child ${newPid} on port ${port} serves; child ${firstPid} finishes its requests`,
      `last rolling restart ok: child ${newPid} on port ${port} replaced child ${firstPid}`,
    ].map((text) => `${serving}; ${text}`));

    sluice.signal("SIGUSR2");
    const failed = await sluice.waitFor((r) => r.event === "rolling-restart" && r !== ok, 60_000);
    expect(failed).toMatchObject({ result: "failed" });
    await until(() => statuses().length === 5, 10_000, "two more STATUS= messages");
    expect(statuses().at(-1)).toBe(`${serving}; last rolling restart failed: ${failed.reason}`);
    // A reload's READY=1 carries the status on (Type=notify-reload would otherwise clear it).
    sluice.signal("SIGHUP");
    await until(() => listener.messages.filter((m) => m.text.startsWith("READY=1")).length === 2, 10_000, "READY=1 after the reload");
    expect(listener.messages.findLast((m) => m.text.startsWith("READY=1"))!.text).toBe(`READY=1\nSTATUS=${statuses().at(-1)}`);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    listener.stop();
  }, 120_000);
});
