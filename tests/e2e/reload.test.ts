/**
 * @module SIGHUP reload end to end: a valid file applies live without failing a request, an
 * invalid one keeps the old configuration serving, listener and child settings wait for a
 * restart, and a burst of SIGHUPs does not pile up.
 */

import { describe, expect, test } from "bun:test";
import { mkdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { envName, OPTIONS } from "../../src/config.ts";
import { startReceiver } from "../fixtures/otlp-receiver.ts";
import { type LogRecord, readMetrics, runSluice, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

/** Variables that would change what these tests see, removed from the inherited environment. */
const CLEAN_ENV = Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""]));

function configFile(lines: string[]): { path: string; write: (lines: string[]) => void } {
  const path = join(tempDir(), "sluice.toml");
  const write = (next: string[]) => writeFileSync(path, `${next.join("\n")}\n`);
  write(lines);
  return { path, write };
}

const reloads = (records: LogRecord[]) => records.filter((r) => r.event === "reload");

/** A POST /echo of 10 bytes sent as 5, a pause of `pauseMs`, then 5; resolves with the status line. */
function pausedUpload(port: number, pauseMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.write("POST /echo HTTP/1.1\r\nHost: sluice\r\nContent-Length: 10\r\n\r\nabcde");
      setTimeout(() => socket.writable && socket.write("fghij"), pauseMs);
    });
    let received = "";
    socket.setTimeout(15_000, () => socket.destroy(new Error(`no answer within 15 s: ${received}`)));
    socket.on("data", (chunk: Buffer) => {
      received += chunk.toString("latin1");
      if (received.includes("\r\n")) {
        resolve(received.slice(0, received.indexOf("\r\n")));
        socket.destroy();
      }
    });
    socket.on("error", reject);
  });
}

describe.each(TARGETS)("reload ($name)", (target) => {
  test("a valid file applies live: new limits for new requests, nothing dropped", async () => {
    const file = configFile(['shutdown-delay = "0s"', 'max-request-body = "1MiB"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    const body = "x".repeat(100);
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body })).status).toBe(200);

    // Requests keep flowing through the reload; none may fail.
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) statuses.push((await fetch(`${sluice.url}/`)).status);
    })();
    file.write(['shutdown-delay = "0s"', 'max-request-body = "10"', 'log-level = "warning"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    stop = true;
    await load;
    expect(record).toMatchObject({ result: "ok", changed: ["max-request-body", "log-level"], pendingRestart: [] });
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body })).status).toBe(413);
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    const metrics = await (await fetch(`${sluice.adminUrl}/metrics`)).text();
    expect(metrics).toContain('sluice_reloads_total{result="ok"} 1');
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    // log-level warning applies live: after the reload record, no access record at info.
    const after = sluice.records.slice(sluice.records.indexOf(record) + 1);
    expect(after.filter((r) => r.event === "access" && r.level === "INFO")).toEqual([]);
    expect(after.filter((r) => r.event === "access" && r.status === 413).length).toBe(0); // 413 is below 500: info
    expect(sluice.records.slice(0, sluice.records.indexOf(record)).some((r) => r.event === "access")).toBe(true);
  }, 60_000);

  test("requests in flight finish on the old timeouts while new ones get the new; the stop uses the reloaded stop timings", async () => {
    const timings = (seconds: number) => [`upstream-timeout = "${seconds}s"`, `body-timeout = "${seconds}s"`, `drain-timeout = "${seconds}s"`, `stop-timeout = "${seconds}s"`];
    const file = configFile(['shutdown-delay = "0s"', ...timings(20)]);
    // The app ignores SIGTERM: only --stop-timeout ends it.
    const sluice = await startSluice(target, { args: ["--config", file.path], env: { ...CLEAN_ENV, APP_ON_TERM: "ignore" } });
    const slow = fetch(`${sluice.url}/slow?ms=2000`).then(async (r) => [r.status, await r.text()]);
    const upload = pausedUpload(sluice.httpPort, 2000);
    await Bun.sleep(300);
    file.write(['shutdown-delay = "0s"', ...timings(1)]);
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor("reload")).toMatchObject({ result: "ok", changed: ["upstream-timeout", "body-timeout", "drain-timeout", "stop-timeout"] });
    // Begun under 20 s, they wait longer than the new 1 s.
    expect(await slow).toEqual([200, "slow 2000\n"]);
    expect(await upload).toBe("HTTP/1.1 200 OK");
    // Begun after the reload: 1 s.
    expect((await fetch(`${sluice.url}/slow?ms=2000`)).status).toBe(504);
    expect(await pausedUpload(sluice.httpPort, 2000)).toBe("HTTP/1.1 408 Request Timeout");
    // At the stop: a request cut at the 1 s drain deadline, the child killed 1 s after SIGTERM.
    // (A stream: its head comes at once, so the new upstream timeout does not end it first.)
    const cut = fetch(`${sluice.url}/stream?chunks=20&gap=300`).then((r) => r.text()).catch((error) => String(error));
    await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === 1, 10_000, "the request in flight");
    const stopAt = performance.now();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(75);
    expect(performance.now() - stopAt).toBeLessThan(5_000);
    expect(await cut).not.toContain("chunk 20\n");
    expect(sluice.events("shutdown.complete")[0]).toMatchObject({ aborted: 1, killed: 1 });
  }, 60_000);

  test("an invalid file keeps the old configuration serving and the exit code clean", async () => {
    const file = configFile(['shutdown-delay = "0s"', 'max-request-body = "1MiB"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    file.write(['shutdown-delay = "0s"', 'max-request-body = "lots"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record.result).toBe("error");
    expect(String(record.error)).toContain(`${file.path} line 2 (max-request-body)`);
    // Still the old limit, still serving.
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(1000) })).status).toBe(200);
    const metrics = await (await fetch(`${sluice.adminUrl}/metrics`)).text();
    expect(metrics).toContain('sluice_reloads_total{result="error"} 1');
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a failed reload's TOML excerpt masks the OTLP headers' credentials in the lines it shows", async () => {
    // The excerpt showed the lines around the error as they were: a token set on the line
    // above went into the reload's record (and, from `sluice check`, to stderr).
    const token = "Bearer s3cr3t-t0ken";
    const headers = `OTEL_EXPORTER_OTLP_HEADERS = "authorization=${token.replace(" ", "%20")},x-api-key=k3y"`;
    const file = configFile(['shutdown-delay = "0s"', headers]);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    file.write(['shutdown-delay = "0s"', headers, "drain-timeout = 3x"]);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record.result).toBe("error");
    const error = String(record.error);
    expect(error).toStartWith(`Invalid TOML in ${file.path} line 3, column 18: `);
    expect(error).toContain(`\n2:  OTEL_EXPORTER_OTLP_HEADERS = ${"*".repeat(headers.length - 29)}\n3:  drain-timeout = 3x\n`);
    // Broken itself: its own line is masked too.
    file.write(['shutdown-delay = "0s"', headers.slice(0, -1)]);
    const checked = await runSluice(target, ["check", "--config", file.path], CLEAN_ENV);
    expect(checked.code).toBe(78);
    expect(checked.stderr).toContain("control characters are not allowed in strings\n");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    for (const secret of ["s3cr3t", "k3y"]) {
      expect(error).not.toContain(secret);
      expect(checked.stderr).not.toContain(secret);
    }
  }, 60_000);

  test("a reload to an upstream-timeout or ready-timeout of 0 is refused: it would give up on every request or child at once", async () => {
    // Accepted, 0 answered every request 504 at once (and no rolling restart's child could be ready).
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    for (const [key, line] of [["upstream-timeout", 2], ["ready-timeout", 3]] as const) {
      const before = reloads(sluice.records).length;
      file.write(['shutdown-delay = "0s"', ...(key === "upstream-timeout" ? ["upstream-timeout = 0"] : ['max-request-body = "10"', 'ready-timeout = "0s"'])]);
      sluice.signal("SIGHUP");
      await until(() => reloads(sluice.records).length > before, 30_000, `the reload of ${key}`);
      const record = reloads(sluice.records).at(-1)!;
      expect(record.result).toBe("error");
      expect(String(record.error)).toStartWith(`Cannot parse ${file.path} line ${line} (${key}): expected a duration of at least 1ms`);
      expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(200);
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    const checked = await runSluice(target, ["check", "--upstream-timeout", "0ms"], CLEAN_ENV);
    expect(checked.code).toBe(78);
    expect(checked.stderr).toStartWith("sluice: Cannot parse --upstream-timeout: expected a duration of at least 1ms");
  }, 60_000);

  test("a file that is a pipe (--config <(...)) is read once: a reload fails instead of falling back to defaults", async () => {
    // Read again, the pipe gave nothing (or waited for a writer): --max-request-body fell back to no limit.
    const fifo = join(tempDir(), "sluice.toml");
    const made = Bun.spawnSync(["mkfifo", fifo]);
    expect(made.exitCode).toBe(0);
    const writer = Bun.spawn(["sh", "-c", `printf 'shutdown-delay = "0s"\\nmax-request-body = "10"\\n' > ${fifo}`]);
    track(writer.pid);
    const sluice = await startSluice(target, { args: ["--config", fifo], env: CLEAN_ENV });
    expect(await writer.exited).toBe(0);
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record.result).toBe("error");
    expect(String(record.error)).toBe(
      `Cannot read the configuration file ${fifo} again: it is not a regular file (a pipe is read once, at start); restart sluice to change the configuration`,
    );
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a file replaced by unlink and create while a reload reads it: later reloads still read it", async () => {
    // The reload looked whether the file was a pipe after reading it; a look that fell while
    // the file was missing marked it read-once, and every reload after was refused.
    const dir = tempDir();
    const path = join(dir, "sluice.toml");
    // Comments make the parse, between the read and that look, last tens of milliseconds.
    const padding = `${"#".repeat(99)}\n`.repeat(10_000);
    const write = (limit: number) => {
      writeFileSync(join(dir, "next.toml"), `${padding}shutdown-delay = "0s"\nmax-request-body = ${limit}\n`);
      renameSync(join(dir, "next.toml"), path); // whole, never read half-written
    };
    write(1000);
    const sluice = await startSluice(target, { args: ["--config", path], env: CLEAN_ENV });
    for (let attempt = 0; attempt < 12; attempt++) {
      write(1000);
      sluice.signal("SIGHUP");
      // The unlink lands anywhere from before the read to after the parse.
      await Bun.sleep(attempt * 5);
      unlinkSync(path);
      await until(() => reloads(sluice.records).length > attempt, 30_000, `reload ${attempt + 1}`);
    }
    write(10);
    sluice.signal("SIGHUP");
    await until(() => reloads(sluice.records).length > 12, 30_000, "the last reload");
    expect(reloads(sluice.records).at(-1)).toMatchObject({ result: "ok", changed: ["max-request-body"] });
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 120_000);

  test("a file replaced by unlink and create just after the start read it: reloads still read it", async () => {
    // The start looked whether the file was a pipe with a stat after parsing it: one that fell
    // while the file was missing took it for a pipe, and every reload was refused until a restart.
    const dir = tempDir();
    const path = join(dir, "sluice.toml");
    // Comments make the parse, between the read and that look, last milliseconds.
    const text = (limit: number) => `${`${"#".repeat(99)}\n`.repeat(9000)}shutdown-delay = "0s"\nmax-request-body = ${limit}\n`;
    writeFileSync(path, text(1000));
    writeFileSync(join(dir, "next.toml"), text(10));
    // Unlinks the file as soon as the start's read closes it, and creates it anew 300 ms later.
    const replacer = Bun.spawn(["python3", "-c", `
import ctypes, os, shutil, sys, time
libc = ctypes.CDLL(None)
fd = libc.inotify_init()
libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x10)  # IN_CLOSE_NOWRITE
print("watching", flush=True)
os.read(fd, 4096)
os.unlink(sys.argv[1])
time.sleep(0.3)
shutil.copyfile(sys.argv[2], sys.argv[1])
`, path, join(dir, "next.toml")], { stdout: "pipe" });
    track(replacer.pid);
    await new Response(replacer.stdout).body!.getReader().read(); // "watching"
    const sluice = await startSluice(target, { args: ["--config", path], env: CLEAN_ENV });
    expect(await replacer.exited).toBe(0);
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor("reload")).toMatchObject({ result: "ok", changed: ["max-request-body"] });
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a reload reports a public directory that moved and a page whose text changed, as it applies them", async () => {
    // Only option values were compared: a `current` symlink turned to a new release changed
    // what sluice serves while the record said nothing had changed.
    const dir = tempDir();
    for (const release of ["1", "2"]) {
      mkdirSync(join(dir, release));
      writeFileSync(join(dir, release, "app.txt"), `release ${release}\n`);
    }
    symlinkSync(join(dir, "1"), join(dir, "current"));
    const page = join(dir, "504.html");
    writeFileSync(page, "<p>first</p>\n");
    const lines = ['shutdown-delay = "0s"', 'upstream-timeout = "300ms"', `public-dir = "${join(dir, "current")}"`, `gateway-timeout-page = "${page}"`];
    const file = configFile(lines);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    expect(await (await fetch(`${sluice.url}/app.txt`)).text()).toBe("release 1\n");
    symlinkSync(join(dir, "2"), join(dir, "next"));
    renameSync(join(dir, "next"), join(dir, "current"));
    writeFileSync(page, "<p>second</p>\n");
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record).toMatchObject({ result: "ok", changed: ["public-dir", "gateway-timeout-page"], pendingRestart: [] });
    expect(await (await fetch(`${sluice.url}/app.txt`)).text()).toBe("release 2\n");
    expect(await (await fetch(`${sluice.url}/hang`)).text()).toBe("<p>second</p>\n");
    // Nothing moved since: nothing to report.
    sluice.signal("SIGHUP");
    await until(() => reloads(sluice.records).length === 2, 30_000, "the second reload");
    expect(reloads(sluice.records)[1]).toMatchObject({ result: "ok", changed: [] });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a SIGHUP during the stop that follows the child's own exit is ignored too", async () => {
    // Only a stop asked for by a signal ignored SIGHUP: after the child's exit a reload still
    // read the file (and told systemd RELOADING=1 after STOPPING=1), then was abandoned.
    const receiver = startReceiver();
    receiver.delayMs = 20_000; // the stop waits in its flush for the whole --flush-timeout
    try {
      const file = configFile(['shutdown-delay = "0s"', 'flush-timeout = "3s"']);
      const sluice = await startSluice(target, { args: ["--config", file.path], env: { ...CLEAN_ENV, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } });
      expect(await (await fetch(`${sluice.url}/close-listener?exitAfterMs=50`)).text()).toBe("closing\n");
      await sluice.waitFor((r) => r.event === "stop.phase" && r.step === "stop-child");
      sluice.signal("SIGHUP");
      await sluice.waitFor((r) => r.event === "signal" && r.signal === "SIGHUP");
      expect(await sluice.exitCode()).toBe(1);
      expect(sluice.events("stop.begin")[0]?.reason).toBe("child exited with code 1");
      expect(sluice.events("reload")).toEqual([]);
    } finally {
      receiver.stop();
    }
  }, 60_000);

  test("a reload still reading its file when a quick stop begins is logged abandoned before shutdown complete", async () => {
    // Found by scripts/fuzz/lifecycle.ts: the reload said "abandoned" only once its read came
    // back, after the stop's last record, or never when sluice had exited first.
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    // The reload's read waits on a FIFO that nothing writes to (open blocks without a writer).
    unlinkSync(file.path);
    expect(Bun.spawnSync(["mkfifo", file.path]).exitCode).toBe(0);
    sluice.signal("SIGHUP");
    await sluice.waitFor((r) => r.event === "signal" && r.signal === "SIGHUP");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(reloads(sluice.records)).toMatchObject([{ result: "abandoned" }]);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
    unlinkSync(file.path);
  }, 60_000);

  test("a reload with --trusted-proxies set applies (comparing CIDRs threw, so nothing was applied)", async () => {
    const file = configFile(['shutdown-delay = "0s"', 'trusted-proxies = "10.0.0.0/8"', 'max-request-body = "1MiB"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    file.write(['shutdown-delay = "0s"', 'trusted-proxies = ["10.0.0.0/8", "127.0.0.1"]', 'max-request-body = "10"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record).toMatchObject({ result: "ok", changed: ["max-request-body", "trusted-proxies"], pendingRestart: [] });
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.stderr).toBe("");
  }, 60_000);

  test("listener and child settings are reported as pending a restart and keep their values", async () => {
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    // (The harness passes the ports as flags, which win over the file: use other settings.)
    file.write(['shutdown-delay = "0s"', 'target-host = "localhost"', 'ready-timeout = "5s"', 'upstream-timeout = "30s"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    // ready-timeout is for the next child started (tests/e2e/rolling-restart.test.ts).
    expect(record).toMatchObject({ result: "ok", changed: ["ready-timeout", "upstream-timeout"], pendingRestart: ["target-host"] });
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("idle-timeout and header-timeout wait for a restart on the binary; under Deno, which applies neither, a reload says so", async () => {
    // Under Deno the record said "waiting for a restart", and the restart then reported them
    // not applied (config.unapplied): Deno.serve has no idle or header timeout.
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    // The binary's header timeout is fixed at 10 s: another value is refused there.
    file.write(['shutdown-delay = "0s"', 'idle-timeout = "30s"', ...(target.name === "deno" ? ['header-timeout = "5s"'] : []), 'target-host = "localhost"', 'max-request-body = "10"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    if (target.name === "binary") {
      expect(record).toMatchObject({ level: "WARNING", result: "ok", changed: ["max-request-body"], pendingRestart: ["target-host", "idle-timeout"] });
      expect(record.unapplied).toBeUndefined();
    } else {
      expect(record).toMatchObject({
        level: "WARNING",
        result: "ok",
        changed: ["max-request-body"],
        pendingRestart: ["target-host"],
        unapplied: ["idle-timeout", "header-timeout"],
      });
      expect(record.message).toBe(
        'Reloaded the configuration; not applied by this runtime\'s HTTP server, which has no idle or header timeout: ["idle-timeout","header-timeout"]; waiting for a restart: ["target-host"]',
      );
    }
    expect((await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) })).status).toBe(413);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("the restart policy applies from the child's next exit on: restarted, requests held, then back to never", async () => {
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    // It was pending a restart of sluice: a crash after this reload still ended sluice.
    file.write(['shutdown-delay = "0s"', 'restart = "on-failure"', 'restart-max-delay = "100ms"']);
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor("reload")).toMatchObject({ result: "ok", changed: ["restart", "restart-max-delay"], pendingRestart: [] });
    const firstPid = sluice.childPid!;
    process.kill(firstPid, "SIGKILL");
    await sluice.waitFor((r) => r.event === "child.exited" && r.pid === firstPid);
    // Held for the restarted child (the new pipeline waits for a comeback), not 503.
    const during = fetch(`${sluice.url}/pid`).then(async (r) => [r.status, await r.text()] as const);
    // The first backoff is 250 ms, capped by the reloaded restart-max-delay.
    expect(await sluice.waitFor("child.restarting")).toMatchObject({ delayMs: 100, attempt: 1 });
    const ready = await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== firstPid);
    expect(await during).toEqual([200, String(ready.pid)]);

    file.write(['shutdown-delay = "0s"', 'restart = "never"']);
    sluice.signal("SIGHUP");
    await until(() => reloads(sluice.records).length === 2, 30_000, "the second reload");
    expect(reloads(sluice.records)[1]).toMatchObject({ result: "ok", changed: ["restart", "restart-max-delay"], pendingRestart: [] });
    process.kill(ready.pid as number, "SIGKILL");
    expect(await sluice.exitCode()).toBe(137);
    expect(sluice.events("child.restarting")).toHaveLength(1);
  }, 60_000);

  test("at --log-level warning, a reload that leaves options pending a restart still says so", async () => {
    // The record was at info: at warning nothing told the operator that the change waits.
    const file = configFile(['shutdown-delay = "0s"', 'log-level = "warning"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV, waitReady: false });
    await until(async () => (await fetch(`${sluice.adminUrl}/readyz`).catch(() => undefined))?.status === 200, 30_000, "ready");
    file.write(['shutdown-delay = "0s"', 'log-level = "warning"', 'target-host = "localhost"', 'max-request-body = "10"']);
    sluice.signal("SIGHUP");
    const record = await sluice.waitFor("reload");
    expect(record).toMatchObject({ level: "WARNING", result: "ok", changed: ["max-request-body"], pendingRestart: ["target-host"] });
    expect(record.message).toBe('Reloaded the configuration; waiting for a restart: ["target-host"]');
    // A reload that applies everything stays at info, below this level.
    file.write(['shutdown-delay = "0s"', 'log-level = "warning"', 'max-request-body = "20"']);
    sluice.signal("SIGHUP");
    await until(async () => (await readMetrics(sluice))['sluice_reloads_total{result="ok"}'] === 2, 30_000, "the second reload");
    expect(sluice.events("reload").length).toBe(1);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("--log-format text: a failed reload's error, a TOML excerpt over several lines, stays one line", async () => {
    const file = configFile(['shutdown-delay = "0s"', 'log-format = "text"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV, waitReady: false });
    // Text lines are no JSON records: the harness keeps them in otherLines.
    await until(async () => (await fetch(`${sluice.adminUrl}/readyz`).catch(() => undefined))?.status === 200, 30_000, "ready");
    file.write(['shutdown-delay = "0s"', 'log-format = "text"', "drain-timeout = 3x"]);
    sluice.signal("SIGHUP");
    await until(() => sluice.otherLines.some((line) => line.includes("Reload failed")), 30_000, "the reload record");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    const failed = sluice.otherLines.find((line) => line.includes("Reload failed"))!;
    // The excerpt's lines, escaped within the record's own line.
    expect(failed).toContain("line 3, column 18");
    expect(failed).toContain("\\n3:  drain-timeout = 3x\\n");
    // Every line is a whole record (or the fixture app's own).
    const strays = sluice.otherLines.filter((line) => !/^\d{4}-\d\d-\d\dT\S+Z (INFO|WARNING|ERROR) /.test(line) && !line.startsWith("fixture app"));
    expect(strays).toEqual([]);
  }, 60_000);

  test("a burst of SIGHUPs never runs more reloads than signals arrived, and all succeed", async () => {
    const file = configFile(['shutdown-delay = "0s"']);
    const sluice = await startSluice(target, { args: ["--config", file.path], env: CLEAN_ENV });
    // The kernel merges a pending signal with a new one, so fewer than 20 may arrive; those
    // that do must never pile up into more reloads than signals, and all must succeed.
    for (let i = 0; i < 20; i++) sluice.signal("SIGHUP");
    await sluice.waitFor("reload");
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    const received = sluice.events("signal").filter((r) => r.signal === "SIGHUP").length;
    const count = reloads(sluice.records).length;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(received);
    expect(reloads(sluice.records).every((r) => r.result === "ok")).toBe(true);
  }, 60_000);
});
