/** @module The stop sequence end to end: order, drain under load, fast stop, shutdown delay. */

import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { closeSync, constants, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { IGNORED_SIGNALS } from "../../src/runtime/signals.ts";
import { FIXTURE_APP, freePort, parseLogRecord, rawRequest, readMetrics, refuses, ROOT, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

/** Uncompressed, so that the bytes fetch hands over are the bytes that were sent. */
const IDENTITY = { headers: { "accept-encoding": "identity" } };

describe.each(TARGETS)("stop order ($name)", (target) => {
  test("the child gets its stop signal only after the listener closed and nothing is in flight", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "300ms", "--drain-timeout", "20s"],
      env: { APP_ON_TERM: "probe", RECORD_FILE: recordFile },
    });
    // Requests in flight when SIGTERM arrives must finish before the child hears anything.
    const slow = [1500, 2500].map((ms) => fetch(`${sluice.url}/slow?ms=${ms}`));
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_in_flight 2"), 10_000, "2 in flight");
    sluice.signal("SIGTERM");
    const responses = await Promise.all(slow);
    expect(responses.map((r) => r.status)).toEqual([200, 200]);
    expect(await sluice.exitCode()).toBe(0);

    // The child itself saw the world at the instant of its SIGTERM.
    const seen = JSON.parse(readFileSync(recordFile, "utf8").trim().split("\n").at(-1)!);
    expect(seen).toEqual({ probe: "term", sluicePort: "refused", inFlight: 0 });

    const last = sluice.records.at(-1)!;
    expect(last.event).toBe("shutdown.complete");
    expect(last).toMatchObject({ drained: 2, aborted: 0, killed: 0, exitCode: 0 });
    expect(Object.keys(last.phases as object)).toEqual(["shutdown-delay", "close-listener", "drain", "stop-child", "flush-traces", "close-admin"]);
  }, 60_000);

  test("during the shutdown delay requests are served with Connection: close and /readyz is 503", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "3s"] });
    expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
    const inFlight = fetch(`${sluice.url}/slow?ms=6000`);
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    const ready = await fetch(`${sluice.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect((await ready.text()).trim()).toBe("stopping");
    const response = await fetch(`${sluice.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("connection")).toBe("close");
    expect((await response.text()).length).toBe(1024);
    // Once, also to a client that asked to close (Deno's server adds its own then).
    for (const asked of ["Connection: close\r\n", ""]) {
      const head = (await rawRequest(sluice.httpPort, `GET / HTTP/1.1\r\nHost: x\r\n${asked}\r\n`)).split("\r\n\r\n")[0]!;
      expect(head.split("\r\n").filter((line) => /^connection:/i.test(line))).toEqual([expect.stringMatching(/^connection: close$/i)]);
    }
    // After the delay the listener closes: new connections are refused at the TCP level
    // while the request in flight is still being drained.
    await sluice.waitFor((r) => r.event === "stop.phase" && r.step === "close-listener");
    expect(await refuses(sluice.httpPort)).toBe(true);
    expect((await inFlight).status).toBe(200);
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("/metrics shows each stop phase's duration as soon as it ends, while the stop goes on", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "500ms", "--drain-timeout", "20s"] });
    const inFlight = fetch(`${sluice.url}/slow?ms=3000`);
    await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === 1, 10_000, "1 in flight");
    sluice.signal("SIGTERM");
    // The admin listener serves until the last step: a scrape during the drain sees the phases so far.
    await sluice.waitFor((r) => r.event === "stop.phase" && r.step === "close-listener");
    const during = await readMetrics(sluice);
    expect(during['sluice_shutdown_phase_seconds{phase="shutdown-delay"}']).toBeGreaterThanOrEqual(0.45);
    expect(during['sluice_shutdown_phase_seconds{phase="close-listener"}']).toBeGreaterThanOrEqual(0);
    expect(during['sluice_shutdown_phase_seconds{phase="drain"}']).toBeUndefined();
    expect((await inFlight).status).toBe(200);
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a connection that sent half a request to the admin port does not hold the stop's end", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--flush-timeout", "5s"] });
    const half = await Bun.connect({ hostname: "127.0.0.1", port: sluice.adminPort, socket: { data() {} } });
    half.write("GET /metrics HTTP/1.1\r\nHost: x\r\n"); // no blank line: the head never ends
    try {
      // Nothing waits for a scrape that never asked; before, close-admin took all of
      // --flush-timeout that was left (on Bun: its graceful close waits for such connections).
      await until(async () => (await fetch(`${sluice.adminUrl}/livez`)).status === 200, 10_000, "the admin listener");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      const phases = sluice.records.at(-1)!.phases as Record<string, number>;
      expect(phases["close-admin"]).toBeLessThan(1000);
    } finally {
      half.end();
    }
  }, 60_000);

  test("under concurrent load during a stop: no 5xx and no reset on accepted requests", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "1500ms", "--drain-timeout", "20s"] });
    const statuses: number[] = [];
    const errors: string[] = [];
    let stopping = false;
    let refusedAfterClose = 0;
    const worker = async () => {
      // Bounded: at most 400 requests per worker, and only until the listener refuses.
      for (let i = 0; i < 400; i++) {
        try {
          const response = await fetch(`${sluice.url}/slow?ms=${i % 5 === 0 ? 300 : 5}`);
          statuses.push(response.status);
          await response.text();
        } catch (error) {
          if (stopping && (await refuses(sluice.httpPort))) {
            refusedAfterClose++;
            return;
          }
          errors.push(String(error));
        }
      }
    };
    const workers = Array.from({ length: 16 }, worker);
    await until(() => statuses.length >= 50, 20_000, "50 responses before the stop");
    stopping = true;
    sluice.signal("SIGTERM");
    await Promise.all(workers);
    expect(await sluice.exitCode()).toBe(0);
    expect(statuses.filter((s) => s >= 500)).toEqual([]);
    expect(errors).toEqual([]);
    expect(statuses.length).toBeGreaterThan(50);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", aborted: 0 });
  }, 90_000);

  test("a second SIGTERM skips the remaining waits", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s", "--drain-timeout", "30s"] });
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    const before = performance.now();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(75);
    expect(performance.now() - before).toBeLessThan(1000);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", fast: true });
  }, 60_000);

  test("a child that dies during the shutdown delay ends the delay: the port refuses instead of answering 502", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s"] });
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    process.kill(sluice.childPid!, "SIGKILL");
    expect(await sluice.exitCode(15_000)).toBe(0);
    const complete = sluice.records.at(-1)!;
    expect(complete.event).toBe("shutdown.complete");
    expect((complete.phases as Record<string, number>)["shutdown-delay"]).toBeLessThan(10_000);
  }, 60_000);

  test("with --restart, a child that dies during the shutdown delay is not restarted and ends the delay", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s", "--restart", "always"] });
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    process.kill(sluice.childPid!, "SIGKILL");
    expect(await sluice.exitCode(15_000)).toBe(0);
    expect(sluice.events("child.restarting")).toEqual([]);
    expect(sluice.events("child.started").length).toBe(1);
    const complete = sluice.records.at(-1)!;
    expect(complete.event).toBe("shutdown.complete");
    expect((complete.phases as Record<string, number>)["shutdown-delay"]).toBeLessThan(10_000);
  }, 60_000);

  test("with --restart, a request the dying child refuses during the shutdown delay waits for its exit and gets 503 with Retry-After, as without a stop", async () => {
    // The stop made the refused request skip the wait for the child's exit: it was sent again
    // at once to the child still counted as ready, refused again, and answered 502.
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "20s", "--restart", "on-failure"] });
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    // The app stops listening at once and exits 1 a moment later: until then sluice counts it as ready.
    const app = `http://127.0.0.1:${sluice.targetPort}`;
    expect(await (await fetch(`${app}/close-listener?exitAfterMs=400`)).text()).toBe("closing\n");
    await until(() => refuses(sluice.targetPort), 10_000, "the app to stop listening");
    const response = await fetch(`${sluice.url}/pid`, { headers: { "x-request-id": "refused-in-delay" } });
    expect([response.status, response.headers.get("retry-after")]).toEqual([503, "1"]);
    const record = await sluice.waitFor((r) => r.event === "access" && r.requestId === "refused-in-delay");
    expect(record.status).toBe(503);
    expect(await sluice.exitCode(15_000)).toBe(0);
    expect(sluice.events("child.started")).toHaveLength(1);
  }, 60_000);

  test("with --restart, a request during the shutdown delay while the child is being restarted is held and served", async () => {
    // Found while deciding which 503s scripts/fuzz/lifecycle.ts may accept (by reading the
    // gate, then reproduced): the stop refused every hold at once, so during the delay, which
    // serves normally, a request got 503 while the restarted child was coming up.
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "4s", "--restart", "always", "--hold-timeout", "20s"],
      env: { APP_BIND_DELAY_MS: "1500" }, // every start, the restarted one too
    });
    process.kill(sluice.childPid!, "SIGKILL");
    await sluice.waitFor((r) => r.event === "child.started" && sluice.events("child.started").length === 2);
    sluice.signal("SIGTERM");
    await sluice.waitFor("stop.begin");
    const response = await fetch(`${sluice.url}/`);
    expect(response.status).toBe(200);
    expect((await response.text()).length).toBe(1024);
    expect(await sluice.exitCode(30_000)).toBe(0);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0, aborted: 0 });
  }, 60_000);

  test("with --restart, a request held for a restarting child at the drain deadline gets 503", async () => {
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--drain-timeout", "300ms", "--restart", "always", "--hold-timeout", "20s"],
      env: { APP_BIND_DELAY_MS: "1500" },
    });
    process.kill(sluice.childPid!, "SIGKILL");
    await sluice.waitFor((r) => r.event === "child.started" && sluice.events("child.started").length === 2);
    const held = fetch(`${sluice.url}/`).then((r) => r.status);
    await until(async () => (await readMetrics(sluice)).sluice_requests_held === 1, 10_000, "1 held");
    sluice.signal("SIGTERM");
    expect(await held).toBe(503);
    expect(await sluice.exitCode(30_000)).toBe(75);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", aborted: 1 });
  }, 60_000);

  test("a stop before the child was ever ready skips the shutdown delay; a held request gets 503", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s"], env: { APP_BIND_DELAY_MS: "60000" }, waitReady: false });
    await sluice.waitFor("child.started");
    const held = fetch(`${sluice.url}/`).then((r) => r.status);
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_held 1"), 10_000, "1 held");
    sluice.signal("SIGTERM");
    expect(await held).toBe(503);
    expect(await sluice.exitCode(20_000)).toBe(0);
    const complete = sluice.records.at(-1)!;
    expect(complete).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
    expect(Object.keys(complete.phases as object)).not.toContain("shutdown-delay");
    expect(sluice.events("ready")).toEqual([]);
  }, 60_000);

  test("a stop before the child was ever ready answers a held keep-alive request with Connection: close", async () => {
    // Found by scripts/fuzz/lifecycle.ts: with the shutdown delay skipped, nothing told the
    // client that its connection would close after the 503, so it sent its next request on
    // it and got no answer at all.
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s"], env: { APP_BIND_DELAY_MS: "60000" }, waitReady: false });
    await sluice.waitFor("child.started");
    const socket = connect(sluice.httpPort, "127.0.0.1");
    try {
      let received = "";
      const head = new Promise<string>((resolve) => {
        socket.on("data", (chunk) => {
          received += chunk.toString("latin1");
          if (received.includes("\r\n\r\n")) resolve(received.slice(0, received.indexOf("\r\n\r\n")));
        });
      });
      socket.write("GET / HTTP/1.1\r\nHost: sluice\r\n\r\n"); // keep-alive, as HTTP/1.1 is by default
      await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_held 1"), 10_000, "1 held");
      sluice.signal("SIGTERM");
      const answer = (await head).toLowerCase();
      expect(answer).toStartWith("http/1.1 503");
      expect(answer).toContain("connection: close");
      expect(await sluice.exitCode(20_000)).toBe(0);
    } finally {
      socket.destroy();
    }
  }, 60_000);

  test("a SIGHUP while the last logs flush adds no record after shutdown complete", async () => {
    // Found by scripts/fuzz/lifecycle.ts (Deno): a signal in the moment between the last
    // record and the exit was logged ("Received SIGHUP") after shutdown complete. Here that
    // moment is made long: stdout is a FIFO this test stops reading, so the flush waits.
    const dir = tempDir();
    const fifo = join(dir, "stdout");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const [httpPort, targetPort, adminPort] = [freePort(), freePort(), freePort()];
    const command = [
      ...target.command, "--http-host", "127.0.0.1", "--http-port", String(httpPort), "--target-port", String(targetPort),
      "--admin-listen", `127.0.0.1:${adminPort}`, "--shutdown-delay", "0", "--flush-timeout", "20s", "--", ...FIXTURE_APP,
    ];
    const proc = Bun.spawn(["sh", "-c", 'exec "$@" > "$0"', fifo, ...command], { cwd: ROOT, stdout: "ignore", stderr: "pipe" });
    track(proc.pid);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    let output = "";
    /** Reads what the FIFO holds now; true at its end (sluice closed stdout). */
    const drain = (): boolean => {
      const buffer = Buffer.alloc(65536);
      for (;;) {
        let n: number;
        try {
          n = readSync(reader, buffer);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "EAGAIN") return false;
          throw error;
        }
        if (n === 0) return true;
        output += buffer.subarray(0, n).toString();
      }
    };
    try {
      await until(() => (drain(), output.includes('"event":"ready"')), 30_000, "ready");
      track(parseLogRecord(output.split("\n").find((line) => line.includes('"child.started"'))!)!.pid as number, true);
      // Stop reading; the access records fill the pipe (64 KiB) and queue behind it.
      for (let i = 0; i < 400; i++) await (await fetch(`http://127.0.0.1:${httpPort}/`)).text();
      proc.kill("SIGTERM");
      // close-admin is the step before the last record: once the admin port refuses, it is out.
      await until(() => refuses(adminPort), 20_000, "the admin listener closed");
      await Bun.sleep(200);
      proc.kill("SIGHUP");
      await Bun.sleep(200);
      await until(() => drain(), 30_000, "the end of sluice's output");
      expect(await proc.exited).toBe(0);
      const records = output.trim().split("\n").map((line) => parseLogRecord(line)).filter((r) => r !== undefined);
      expect(records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
      expect(records.filter((r) => r.event === "signal").map((r) => r.signal)).toEqual(["SIGTERM"]);
    } finally {
      closeSync(reader);
    }
  }, 90_000);

  test("SIGUSR1, SIGALRM and the other signals sluice has no use for are logged and ignored: a request in flight completes, then it stops in order", async () => {
    // Each ended sluice at once (128+n), resetting the request and leaving the child running.
    const ignored = target.name === "binary" ? bunRuntime.ignorableSignals : IGNORED_SIGNALS;
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const slow = fetch(`${sluice.url}/slow?ms=8000`).then(async (r) => [r.status, await r.text()]);
    await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 30_000, "the slow request in flight");
    for (const signal of ignored) {
      sluice.signal(signal);
      // One at a time: the record says the handler ran before the next signal is sent.
      await sluice.waitFor((r) => r.event === "signal.ignored" && r.signal === signal);
    }
    // Bun ignores SIGPWR itself: no record, and the binary lives on.
    if (target.name === "binary") sluice.signal("SIGPWR");
    // Still in flight after every signal, and answered whole.
    expect((await readMetrics(sluice))["sluice_requests_in_flight"]).toBe(1);
    expect(await slow).toEqual([200, "slow 8000\n"]);
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
  }, 60_000);

  test("SIGQUIT stops fast at once, aborting requests in flight", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s", "--drain-timeout", "30s"] });
    const slow = fetch(`${sluice.url}/slow?ms=20000`).then((r) => r.text()).catch((e) => `error: ${e}`);
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_in_flight 1"), 10_000, "1 in flight");
    const before = performance.now();
    sluice.signal("SIGQUIT");
    expect(await sluice.exitCode()).toBe(75);
    expect(performance.now() - before).toBeLessThan(1000);
    expect(await slow).not.toBe("slow 20000\n");
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", fast: true, aborted: 1 });
  }, 60_000);

  test("requests still running at the drain deadline are aborted and counted", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "500ms"] });
    const slow = fetch(`${sluice.url}/slow?ms=20000`).then((r) => r.text()).catch((e) => `error: ${e}`);
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_in_flight 1"), 10_000, "1 in flight");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(75);
    expect(await slow).not.toBe("slow 20000\n");
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", aborted: 1, drained: 0 });
  }, 60_000);

  test("a connection that sent half a request head does not hold the drain; a slow response and a file being sent still finish", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "public"));
    // Larger than the loopback socket buffers: its sending outlasts the slow response while
    // the client does not read. On the binary Bun sends it with sendfile(2), unobserved.
    const file = randomBytes(24 * 1024 * 1024);
    writeFileSync(join(dir, "public/big.bin"), file);
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--drain-timeout", "15s", "--public-dir", join(dir, "public")],
    });
    const half = await Bun.connect({ hostname: "127.0.0.1", port: sluice.httpPort, socket: { data() {} } });
    half.write("GET / HTTP/1.1\r\nHost: x\r\n"); // no blank line: the head never ends
    // The file's client reads nothing until the slow response is done.
    const download = connect(sluice.httpPort, "127.0.0.1");
    let received = 0;
    download.on("data", (chunk: Buffer) => (received += chunk.length));
    download.on("error", () => {});
    const downloaded = new Promise<void>((resolve) => download.on("close", () => resolve()));
    download.write("GET /big.bin HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n");
    download.pause();
    try {
      const slow = fetch(`${sluice.url}/slow?ms=1500`);
      await until(async () => ((await readMetrics(sluice)).sluice_requests_in_flight ?? 0) >= 1, 10_000, "the slow request in flight");
      sluice.signal("SIGTERM");
      const response = await slow;
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("slow 1500\n");
      download.resume();
      await downloaded;
      expect(received).toBeGreaterThan(file.length); // the head and every byte of the body
      expect(await sluice.exitCode()).toBe(0);
      const complete = sluice.records.at(-1)!;
      // Before, the binary's drain waited for the half-sent head until Bun's header timeout
      // (10-12 s) or the drain deadline.
      expect((complete.phases as Record<string, number>).drain).toBeLessThan(5000);
      // The file is not counted on the binary: its exchange ends when Bun takes it over.
      expect(complete).toMatchObject({ event: "shutdown.complete", exitCode: 0, drained: target.name === "binary" ? 1 : 2, aborted: 0 });
    } finally {
      half.end();
      download.destroy();
    }
  }, 60_000);

  test("a request cut at the drain deadline: its client gets the 503 that its access record and metrics show, bytes included", async () => {
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--drain-timeout", "500ms", "--stop-timeout", "3s"],
      env: { APP_ON_TERM: "ignore" }, // the stop-child phase leaves time to scrape /metrics
    });
    let received = -1;
    const slow = fetch(`${sluice.url}/slow?ms=20000`, IDENTITY).then(async (r) => {
      received = (await r.arrayBuffer()).byteLength;
      return r.status;
    }).catch((e) => `error: ${e}`);
    await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === 1, 10_000, "1 in flight");
    sluice.signal("SIGTERM");
    await sluice.waitFor((r) => r.event === "stop.phase" && r.step === "drain");
    const metrics = await readMetrics(sluice);
    const record = await sluice.waitFor((r) => r.event === "access" && r.path === "/slow");
    // Before, the binary cut the connection right after aborting: no response at all.
    expect(await slow).toBe(503);
    expect(record).toMatchObject({ status: 503, outcome: "aborted" });
    // Before, the record said bytesOut 0 for the 503's body the client got.
    expect(received).toBeGreaterThan(0);
    expect(record.bytesOut).toBe(received);
    expect(metrics['sluice_requests_total{code="503"}']).toBe(1);
    expect(await sluice.exitCode()).toBe(75);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", aborted: 1, drained: 0 });
  }, 60_000);

  test("a request cut at the drain deadline gets the 503 page with its Content-Length, and its record counts the page's bytes", async () => {
    const dir = tempDir();
    const page = "<h1>down for a moment</h1>\n".repeat(40);
    writeFileSync(join(dir, "503.html"), page);
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--drain-timeout", "300ms", "--unavailable-page", join(dir, "503.html")],
    });
    const slow = fetch(`${sluice.url}/slow?ms=20000`, IDENTITY).then(async (r) => ({
      status: r.status,
      length: r.headers.get("content-length"),
      bytes: (await r.arrayBuffer()).byteLength,
    }));
    await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === 1, 10_000, "1 in flight");
    sluice.signal("SIGTERM");
    expect(await slow).toEqual({ status: 503, length: String(page.length), bytes: page.length });
    const record = await sluice.waitFor((r) => r.event === "access" && r.path === "/slow");
    expect(record).toMatchObject({ status: 503, outcome: "aborted", bytesOut: page.length });
    expect(await sluice.exitCode()).toBe(75);
  }, 60_000);

  test("a fast stop that cuts a request waiting for the app still sends it the 503 that its record shows", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "30s", "--drain-timeout", "30s"] });
    let received = 0;
    const slow = fetch(`${sluice.url}/slow?ms=20000`, IDENTITY).then(async (r) => {
      received = (await r.arrayBuffer()).byteLength;
      return r.status;
    }).catch(() => "no response");
    await until(async () => (await readMetrics(sluice)).sluice_requests_in_flight === 1, 10_000, "1 in flight");
    sluice.signal("SIGQUIT");
    expect(await sluice.exitCode()).toBe(75);
    const seen = await slow;
    const record = await sluice.waitFor((r) => r.event === "access" && r.path === "/slow");
    // Before, the binary cut the connections at once: no answer, and a record that said 503.
    expect(record).toMatchObject({ status: seen === "no response" ? 444 : seen, outcome: "aborted", bytesOut: received });
    expect(seen).toBe(503);
  }, 60_000);
});
