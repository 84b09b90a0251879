/**
 * @module The child end to end: readiness gate, held requests, exit codes, the stop ladder,
 * restarts, the child's output and environment, the admin endpoints, healthcheck, and logs
 * at exit when stdout is a slow pipe.
 */

import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, appStartingDifferently, FIXTURE_APP, freePort, groupProcesses, type LogRecord, parseLogRecord, refuses, rssKiB, runSluice, type Sluice, startSluice, type Target, TARGETS, tempDir, track, until } from "../harness.ts";
import { elfInterpreter } from "../../src/spawn-failure.ts";

/** No shutdown delay: for tests that stop sluice but are not about the stop. */
const QUICK_STOP = ["--shutdown-delay", "0"];

async function metricsText(sluice: Sluice): Promise<string> {
  return (await fetch(`${sluice.adminUrl}/metrics`)).text();
}

/** The value of one sample on /metrics (`name` with its labels, as rendered), or undefined. */
async function metric(sluice: Sluice, name: string): Promise<number | undefined> {
  const line = (await metricsText(sluice)).split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Waits until no process of the group exists; orphaned zombies count until init reaps them. */
async function groupGone(pgid: number): Promise<void> {
  await until(() => !alive(-pgid), 15_000, `process group ${pgid} to be gone (left: ${JSON.stringify(groupProcesses(pgid))})`);
}

function accessRecords(records: LogRecord[]): LogRecord[] {
  return records.filter((r) => r.event === "access");
}

/** What the fixture's /print writes as line i (printedLine in tests/fixtures/app.ts). */
function printedLine(stream: "out" | "err", i: number, width: number): string {
  const head = `${stream} ${i} `;
  return head + String(i % 10).repeat(Math.max(0, width - head.length));
}

/**
 * sluice's stdout on a named pipe the test reads at its own pace: pause it, slow it down.
 * Bun.spawn's own pipes are read eagerly by the test runtime, which hides a slow reader.
 */
class SlowStdout {
  readonly records: LogRecord[] = [];
  readonly otherLines: string[] = [];
  /** Every line, records and others, in the order they came. */
  readonly lines: string[] = [];
  /** Read nothing until then (performance.now() time). */
  pausedUntil = 0;
  /** Bytes per read and the pause after each read while reading. */
  chunkBytes = 4096;
  delayMs = 5;
  readonly writeFd: number;
  readonly ended: Promise<void>;
  #fd: number;
  #buffer = "";
  #stopped = false;

  constructor() {
    const fifo = join(tempDir(), "stdout");
    const made = spawnSync("mkfifo", [fifo]);
    if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
    // Read end first and non-blocking, so opening the write end does not wait.
    this.#fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    this.writeFd = openSync(fifo, constants.O_WRONLY);
    this.ended = this.#loop();
  }

  /** Closes the read end: the writer's next writes fail with EPIPE. */
  stopReading(): Promise<void> {
    this.#stopped = true;
    return this.ended;
  }

  /** Call once the writer has its copy: EOF comes when the last writer closes. */
  releaseWriteEnd(): void {
    closeSync(this.writeFd);
  }

  async waitFor(event: string, timeoutMs = 60_000): Promise<LogRecord> {
    await until(() => this.records.some((r) => r.event === event), timeoutMs, `${event} on the slow stdout`);
    return this.records.find((r) => r.event === event)!;
  }

  async #loop(): Promise<void> {
    const chunk = Buffer.alloc(65536);
    const decoder = new TextDecoder();
    try {
      for (;;) {
        if (this.#stopped) break;
        if (performance.now() < this.pausedUntil) {
          await Bun.sleep(20);
          continue;
        }
        let n: number;
        try {
          n = readSync(this.#fd, chunk, 0, this.chunkBytes, null);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
          await Bun.sleep(5);
          continue;
        }
        if (n === 0) break;
        this.#buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = this.#buffer.indexOf("\n")) >= 0) {
          this.#line(this.#buffer.slice(0, nl));
          this.#buffer = this.#buffer.slice(nl + 1);
        }
        await Bun.sleep(this.delayMs);
      }
      if (this.#buffer) this.#line(this.#buffer);
    } finally {
      closeSync(this.#fd);
    }
  }

  #line(line: string): void {
    this.lines.push(line);
    const record = parseLogRecord(line);
    if (record) this.records.push(record);
    else this.otherLines.push(line);
  }
}

/**
 * A child that writes 1000-byte numbered lines ("line 0 zzz...") to stdout as fast as it
 * takes them, beside the fixture app (whose own output goes to stderr); `written()` is its
 * count so far, noted every `every` lines.
 */
function numberedLines(every: number): { child: string[]; written: () => number } {
  const progress = join(tempDir(), "progress");
  const script = [
    "import os",
    "i = 0",
    "while True:",
    "    os.write(1, (f'line {i} '.ljust(999, 'z') + '\\n').encode())",
    "    i += 1",
    `    if i % ${every} == 0: open(${JSON.stringify(progress)}, 'w').write(str(i))`,
  ].join("\n");
  return {
    child: ["sh", "-c", `python3 -c "$0" & exec "$@" >&2`, script, ...FIXTURE_APP],
    written: () => (existsSync(progress) ? Number(readFileSync(progress, "utf8")) || 0 : 0),
  };
}

/** Starts sluice (with the fixture app, or `child`) whose stdout is a SlowStdout. */
function startWithSlowStdout(
  target: Target,
  args: string[],
  child: string[] = FIXTURE_APP,
): { proc: ReturnType<typeof Bun.spawn>; out: SlowStdout; port: number; adminPort: number; stderr: Promise<string> } {
  const out = new SlowStdout();
  const port = freePort();
  const adminPort = freePort();
  const proc = Bun.spawn(
    [
      ...target.command,
      "--http-host", "127.0.0.1",
      "--http-port", String(port),
      "--target-port", String(freePort()),
      "--admin-listen", `127.0.0.1:${adminPort}`,
      ...args,
      "--",
      ...child,
    ],
    { stdin: "ignore", stdout: out.writeFd, stderr: "pipe" },
  );
  track(proc.pid);
  out.releaseWriteEnd();
  return { proc, out, port, adminPort, stderr: new Response(proc.stderr as ReadableStream).text() };
}

/**
 * Sends `total` GET / requests, `concurrency` at a time, all within `deadlineMs`; returns
 * their statuses (0 for a failure, none for requests never sent).
 */
async function load(url: string, total: number, concurrency: number, deadlineMs = 60_000): Promise<number[]> {
  const statuses: number[] = [];
  const deadline = AbortSignal.timeout(deadlineMs);
  let next = 0;
  const worker = async () => {
    while (next < total && !deadline.aborted) {
      next++;
      try {
        const response = await fetch(`${url}/`, { signal: deadline });
        await response.arrayBuffer();
        statuses.push(response.status);
      } catch {
        statuses.push(0);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

describe.each(TARGETS)("supervision ($name)", (target) => {
  describe("readiness gate", () => {
    test("until the child binds, /readyz is 503 and requests are held, then they succeed", async () => {
      const sluice = await startSluice(target, { args: QUICK_STOP, env: { APP_BIND_DELAY_MS: "2000" }, waitReady: false });
      await sluice.waitFor("child.started");
      await sluice.waitFor("listening");
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${sluice.adminUrl}/livez`)).status).toBe(200);
      const held = Array.from({ length: 5 }, (_, i) =>
        fetch(`${sluice.url}/slow?ms=10&i=${i}`).then(async (r) => ({ status: r.status, body: await r.text(), at: performance.now() })));
      await until(async () => (await metric(sluice, "sluice_requests_held")) === 5, 10_000, "5 held requests");
      expect(sluice.records.some((r) => r.event === "ready")).toBe(false);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(503);

      const results = await Promise.all(held);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(results.every((r) => r.body === "slow 10\n")).toBe(true);
      const ready = await sluice.waitFor("child.ready");
      expect(ready.ms as number).toBeGreaterThanOrEqual(1900);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      // Read after the exit: a record is written when its response has ended, so it may trail the response.
      expect(accessRecords(sluice.records).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    }, 60_000);

    test("/readyz names the state (README): starting until the child is first ready, not-ready while it restarts", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--restart", "on-failure"],
        env: { APP_BIND_DELAY_MS: "1500", APP_EXIT_AFTER_MS: "3500", APP_EXIT_CODE: "1" },
        waitReady: false,
      });
      const readyz = async () => {
        const response = await fetch(`${sluice.adminUrl}/readyz`);
        return [response.status, await response.text()];
      };
      const first = await sluice.waitFor("child.started");
      // The child binds 1.5 s after it started: well inside that, sluice is still starting.
      expect(await readyz()).toEqual([503, "starting\n"]);
      await sluice.waitFor("child.ready");
      expect(await readyz()).toEqual([200, "ready\n"]);
      await sluice.waitFor((r) => r.event === "child.exited" && r.pid === first.pid);
      // Restarted after 250 ms, and binding 1.5 s later: it was ready once, so not "starting".
      expect(await readyz()).toEqual([503, "not-ready\n"]);
      sluice.signal("SIGTERM");
      await sluice.exitCode();
    }, 60_000);

    test("with --ready-path the child is ready only when the path answers 2xx", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--ready-path", "/ready"],
        env: { APP_READY_AFTER_MS: "2000" },
        waitReady: false,
      });
      await sluice.waitFor("listening");
      // The app listens at once; only its /ready says no for 2 s.
      await until(() => sluice.otherLines.some((l) => l.startsWith("fixture app listening")), 20_000, "the app to listen");
      expect((await fetch(`http://127.0.0.1:${sluice.targetPort}/ready`)).status).toBe(503);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(503);
      const held = fetch(`${sluice.url}/pid`);
      await until(async () => (await metric(sluice, "sluice_requests_held")) === 1, 10_000, "1 held request");
      const response = await held;
      expect(response.status).toBe(200);
      expect(Number(await response.text())).toBe(sluice.childPid!);
      expect((await sluice.waitFor("child.ready")).ms as number).toBeGreaterThanOrEqual(1500);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("a child that never becomes ready: exit 78 naming --ready-timeout, and its process group is gone", async () => {
      const sluice = await startSluice(target, {
        args: ["--ready-timeout", "1s"],
        env: { APP_BIND_DELAY_MS: "600000", APP_GRANDCHILD: "1" },
        waitReady: false,
      });
      const started = await sluice.waitFor("child.started");
      const pgid = started.pid as number;
      expect(await sluice.exitCode()).toBe(78);
      const failed = sluice.events("start.failed");
      expect(failed).toHaveLength(1);
      expect(failed[0]!.error).toContain("--ready-timeout 1s");
      expect(failed[0]!.error).toContain(`does the app listen on $PORT?`);
      expect(failed[0]!.level).toBe("FATAL");
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 78, reason: "start failed" });
      await groupGone(pgid);
    }, 60_000);
    test("a --ready-path that never answers is given up at --ready-timeout, not after a longer probe", async () => {
      const sluice = await startSluice(target, { args: ["--ready-path", "/hang", "--ready-timeout", "500ms"], waitReady: false });
      expect(await sluice.exitCode()).toBe(78);
      const started = Date.parse(String((await sluice.waitFor("child.started"))["@timestamp"]));
      const failed = Date.parse(String((await sluice.waitFor("start.failed"))["@timestamp"]));
      // One probe waited 2 s, whatever --ready-timeout said.
      expect(failed - started).toBeLessThan(1500);
    }, 60_000);

    test("an app that listens on ::1 only, with the default --target-host: the timeout names [::1] and the flag to pass", async () => {
      const sluice = await startSluice(target, { args: ["--ready-timeout", "1s"], env: { APP_HOST: "::1" }, waitReady: false });
      expect(await sluice.exitCode()).toBe(78);
      expect(sluice.events("start.failed")[0]?.error).toContain(
        `the app listens on [::1]:${sluice.targetPort} instead: pass --target-host ::1`,
      );
    }, 60_000);

    test("a --ready-path that redirects: the timeout says what it last answered, and where to", async () => {
      const sluice = await startSluice(target, { args: ["--ready-path", "/redirect", "--ready-timeout", "3s"], waitReady: false });
      expect(await sluice.exitCode()).toBe(78);
      expect(sluice.events("start.failed")[0]?.error).toContain(
        `waiting for GET /redirect on 127.0.0.1:${sluice.targetPort} to answer 2xx; it last answered 302 redirecting to /elsewhere`,
      );
    }, 60_000);

    test("a target port another process already listens on: exit 78 naming it, and no child is started", async () => {
      const squatter = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
      try {
        const sluice = await startSluice(target, { args: ["--target-port", String(squatter.port)], waitReady: false });
        expect(await sluice.exitCode()).toBe(78);
        expect(sluice.events("start.failed")[0]?.error).toContain(`127.0.0.1:${squatter.port} (--target-port) already accepts connections`);
        expect(sluice.events("child.started")).toEqual([]);
      } finally {
        squatter.stop(true);
      }
    }, 60_000);

    test("an app that listens elsewhere (it ignores PORT, or binds another address): the timeout says where, from /proc", async () => {
      // It said only "does the app listen on $PORT?", after the whole --ready-timeout.
      const other = freePort();
      const app = (bind: string, port: string) => ["sh", "-c", `exec python3 -m http.server ${port} --bind ${bind}`];
      const ignoring = await startSluice(target, { args: ["--ready-timeout", "2s"], child: app("127.0.0.1", String(other)), waitReady: false });
      expect(await ignoring.exitCode()).toBe(78);
      expect(ignoring.events("start.failed")[0]?.error).toBe(
        `The child did not become ready within --ready-timeout 2s (waiting for 127.0.0.1:${ignoring.targetPort} to accept TCP connections; ` +
          `the app listens on 127.0.0.1:${other} instead: make it listen on the port sluice passes it as PORT (${ignoring.targetPort}))`,
      );
      const port = freePort();
      const elsewhere = await startSluice(target, { args: ["--ready-timeout", "2s", "--target-port", String(port)], child: app("127.0.0.2", "$PORT"), waitReady: false });
      expect(await elsewhere.exitCode()).toBe(78);
      expect(elsewhere.events("start.failed")[0]?.error).toBe(
        `The child did not become ready within --ready-timeout 2s (waiting for 127.0.0.1:${port} to accept TCP connections; ` +
          `the app listens on 127.0.0.2:${port} instead: make it listen on 127.0.0.1:${port}, or pass its address as --target-host)`,
      );
      // On every address, with the right port: the target host is at fault (here a name that does not resolve).
      const wildcard = await startSluice(target, { args: ["--ready-timeout", "2s", "--target-port", String(port)], env: { SLUICE_TARGET_HOST: "sluice-test.invalid" }, child: app("0.0.0.0", "$PORT"), waitReady: false });
      expect(await wildcard.exitCode()).toBe(78);
      expect(wildcard.events("start.failed")[0]?.error).toBe(
        `The child did not become ready within --ready-timeout 2s (waiting for sluice-test.invalid:${port} to accept TCP connections; ` +
          `the app listens on 0.0.0.0:${port}, every address of this machine, yet sluice-test.invalid:${port} does not accept: does SLUICE_TARGET_HOST name this machine (and resolve)?)`,
      );
    }, 60_000);

    test("a long wait for readiness says why 10 s in (child.not-ready, once), not only at --ready-timeout", async () => {
      // With the default 60 s, an app that will never be ready was a silent minute.
      const other = freePort();
      const sluice = await startSluice(target, { args: ["--ready-timeout", "30s"], child: ["python3", "-m", "http.server", String(other), "--bind", "127.0.0.1"], waitReady: false });
      const notice = await sluice.waitFor("child.not-ready", 20_000);
      expect(notice).toMatchObject({
        level: "WARNING",
        pid: sluice.events("child.started")[0]!.pid,
        seconds: 10,
        reason: `waiting for 127.0.0.1:${sluice.targetPort} to accept TCP connections; the app listens on 127.0.0.1:${other} instead: make it listen on the port sluice passes it as PORT (${sluice.targetPort})`,
        limit: "--ready-timeout 30s",
      });
      sluice.signal("SIGTERM");
      await sluice.exitCode();
      expect(sluice.events("child.not-ready")).toHaveLength(1);
    }, 60_000);

    test("the start's errors name where --target-port and --ready-timeout were set (a variable, the file's line), not a flag never passed", async () => {
      const port = freePort();
      const squatter = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
      try {
        const sluice = await startSluice(target, { ports: { target: port }, env: { SLUICE_TARGET_PORT: String(port) }, waitReady: false });
        expect(await sluice.exitCode()).toBe(78);
        expect(sluice.events("start.failed")[0]?.error).toBe(
          `Cannot start the child: 127.0.0.1:${port} (SLUICE_TARGET_PORT) already accepts connections, so requests would go to another process; stop it or choose another SLUICE_TARGET_PORT`,
        );
      } finally {
        squatter.stop(true);
      }
      const file = join(tempDir(), "sluice.toml");
      writeFileSync(file, 'ready-timeout = "1s"\n');
      const sluice = await startSluice(target, { args: ["--config", file], child: ["sleep", "600"], waitReady: false });
      expect(await sluice.exitCode()).toBe(78);
      expect(sluice.events("start.failed")[0]?.error).toStartWith(`The child did not become ready within ${file} line 1 (ready-timeout) 1s (waiting for 127.0.0.1:`);
    }, 60_000);
  });

  describe("held requests are bounded", () => {
    test("--hold-timeout: a request still held at the deadline gets 503 with Retry-After", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--hold-timeout", "300ms"],
        env: { APP_BIND_DELAY_MS: "600000" },
        waitReady: false,
      });
      await sluice.waitFor("listening");
      const before = performance.now();
      const response = await fetch(`${sluice.url}/`);
      const waited = performance.now() - before;
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).not.toBeNull();
      expect(response.headers.get("x-request-id")).toBeTruthy();
      expect(waited).toBeGreaterThanOrEqual(280);
      expect(waited).toBeLessThan(5000);
      expect(await metric(sluice, "sluice_requests_held")).toBe(0);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("--max-held-requests 1: a second held request is refused at once, the first still succeeds", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--max-held-requests", "1"],
        env: { APP_BIND_DELAY_MS: "3000" },
        waitReady: false,
      });
      await sluice.waitFor("listening");
      const first = fetch(`${sluice.url}/`);
      await until(async () => (await metric(sluice, "sluice_requests_held")) === 1, 10_000, "1 held request");
      const before = performance.now();
      const second = await fetch(`${sluice.url}/`);
      expect(second.status).toBe(503);
      expect(second.headers.get("retry-after")).not.toBeNull();
      expect(performance.now() - before).toBeLessThan(1000);
      expect(sluice.records.some((r) => r.event === "ready")).toBe(false);
      const response = await first;
      expect(response.status).toBe(200);
      expect((await response.text()).length).toBe(1024);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);
  });

  describe("exit codes", () => {
    test("the child exits 3 by itself: sluice drains and exits 3", async () => {
      const sluice = await startSluice(target, { env: { APP_EXIT_AFTER_MS: "1500", APP_EXIT_CODE: "3" } });
      expect((await fetch(`${sluice.url}/`)).status).toBe(200);
      expect(await sluice.exitCode()).toBe(3);
      expect(sluice.events("child.exited")).toMatchObject([{ code: 3, signal: null }]);
      const last = sluice.records.at(-1)!;
      expect(last).toMatchObject({ event: "shutdown.complete", exitCode: 3, reason: "child exited with code 3", killed: 0 });
      // No shutdown delay for a child that is gone; the listener still closes before the drain.
      expect(Object.keys(last.phases as object)).toEqual(["close-listener", "drain", "stop-child", "flush-traces", "close-admin"]);
      expect(sluice.events("child.restarting")).toEqual([]);
    }, 60_000);

    test("the child is killed by SIGKILL: sluice exits 137", async () => {
      const sluice = await startSluice(target, { env: { APP_EXIT_AFTER_MS: "1000", APP_EXIT_SIGNAL: "SIGKILL" } });
      expect(await sluice.exitCode()).toBe(137);
      expect(sluice.events("child.exited")).toMatchObject([{ code: 137, signal: "SIGKILL" }]);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 137 });
    }, 60_000);

    test("a child that daemonizes (exits 0 before it is ready, its server left running): exit 78 saying so, not 0", async () => {
      // As nginx without "daemon off;": the server goes on in a session of its own, the first process exits 0.
      const sluice = await startSluice(target, {
        child: ["sh", "-c", 'setsid "$0" "$1" & echo "daemon $!"; exit 0', ...FIXTURE_APP],
        waitReady: false,
      });
      await until(() => sluice.otherLines.some((l) => l.startsWith("daemon ")), 20_000, "the daemon's pid");
      track(Number(sluice.otherLines.find((l) => l.startsWith("daemon "))!.slice("daemon ".length)), true);
      expect(await sluice.exitCode()).toBe(78);
      const failed = sluice.events("start.failed");
      expect(failed).toMatchObject([{ code: 78 }]);
      expect(failed[0]!.error).toContain("The child exited with code 0 before it was ready: if it daemonizes");
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 78, childExitCode: 0 });
    }, 60_000);

    test("with --restart, a child that daemonizes before it is ready: the restart finds the daemon on the port and stops with 78, it is never taken for the child", async () => {
      // The first child leaves a server in a session of its own (whose /ready answers 200 only
      // later, so the first child is not taken for ready through it) and exits once the server
      // listens. The restarted child listens nowhere: it would pass for ready through the
      // daemon, and every request would go to a process sluice cannot stop.
      const mark = join(tempDir(), "started");
      for (const [policy, code] of [["always", 0], ["on-failure", 1]] as const) {
        const script = `if [ -e ${mark} ]; then exec sleep 30; fi; touch ${mark}
          APP_READY_AFTER_MS=3000 setsid "$0" "$1" & echo "daemon $!"
          until (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.05; done
          exit ${code}`;
        const sluice = await startSluice(target, {
          args: [...QUICK_STOP, "--restart", policy, "--ready-path", "/ready"],
          child: ["bash", "-c", script, ...FIXTURE_APP],
          waitReady: false,
        });
        await until(() => sluice.otherLines.some((l) => l.startsWith("daemon ")), 20_000, "the daemon's pid");
        const daemon = Number(sluice.otherLines.find((l) => l.startsWith("daemon "))!.slice("daemon ".length));
        track(daemon, true);
        const exitCode = await Promise.race([sluice.exitCode(), sluice.waitFor("ready").then(() => "ready")]);
        expect({ policy, exitCode }).toEqual({ policy, exitCode: 78 });
        const failed = sluice.events("start.failed");
        expect(failed).toMatchObject([{ code: 78 }]);
        expect(failed[0]!.error).toContain("(--target-port) already accepts connections");
        expect(failed[0]!.error).toContain(`the child that exited with code ${code} before it was ready most likely left it`);
        expect(sluice.events("child.started")).toHaveLength(1);
        process.kill(daemon, "SIGKILL");
        await until(() => refuses(sluice.targetPort), 10_000, "the daemon's port closed");
        rmSync(mark);
      }
    }, 60_000);

    test("a child killed by a signal before it was ready: its 128+n code, and the signal named (SIGKILL: the out-of-memory killer)", async () => {
      // "exited with code 137" read as the app's own code; the OOM killer's SIGKILL was not named.
      for (const [signal, code] of [["KILL", 137], ["TERM", 143]] as const) {
        const sluice = await startSluice(target, { child: ["sh", "-c", `kill -${signal} $$`], waitReady: false });
        expect(await sluice.exitCode()).toBe(code);
        const oom = signal === "KILL" ? " (as the kernel's out-of-memory killer does)" : "";
        expect(sluice.events("start.failed")[0]?.error).toBe(`The child exited with code ${code} before it was ready: it was killed by SIG${signal}${oom}`);
      }
    }, 60_000);

    test("a command that does not exist: exit 78 with a message naming it", async () => {
      for (const command of ["/nonexistent/sluice-test-app", "sluice-test-no-such-command"]) {
        const sluice = await startSluice(target, { child: [command, "--flag"], waitReady: false });
        expect(await sluice.exitCode()).toBe(78);
        const failed = sluice.events("start.failed");
        expect(failed).toHaveLength(1);
        expect(failed[0]!.error).toContain(`Cannot start the child "${command} --flag"`);
        expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 78 });
        expect(sluice.events("child.started")).toEqual([]);
      }
    }, 60_000);

    test("a program that exists but whose interpreter does not (#! line, CRLF, ELF loader): exit 78 naming what is missing, not only \"no such file\"", async () => {
      const dir = tempDir();
      const script = (name: string, text: string) => (writeFileSync(join(dir, name), text, { mode: 0o755 }), join(dir, name));
      // A dynamically linked program whose loader is missing (a glibc build in a FROM scratch image or on Alpine).
      const program = new Uint8Array(readFileSync("/bin/true"));
      const loader = elfInterpreter(program.subarray(0, 4096))!;
      const missingLoader = `/nonexistent${"x".repeat(loader.length - "/nonexistent".length)}`;
      const at = Buffer.from(program).indexOf(loader);
      program.set(new TextEncoder().encode(missingLoader), at);
      writeFileSync(join(dir, "glibc-app"), program, { mode: 0o755 });
      const cases = [
        [script("crlf.sh", "#!/bin/sh\r\nexec sleep 600\r\n"), `the interpreter its #! line names, "/bin/sh\\r", does not (the script has Windows line endings`],
        [script("gone.sh", "#! /nonexistent/ruby -w\nputs 1\n"), `the interpreter its #! line names, "/nonexistent/ruby", does not`],
        [join(dir, "glibc-app"), `the dynamic loader it needs, "${missingLoader}" (its ELF interpreter), does not`],
      ];
      for (const [command, missing] of cases) {
        const sluice = await startSluice(target, { child: [command!], waitReady: false });
        expect(await sluice.exitCode()).toBe(78);
        const failed = sluice.events("start.failed");
        expect(failed).toHaveLength(1);
        expect(failed[0]!.error).toStartWith(`Cannot start the child "${command}": `);
        expect(failed[0]!.error).toContain(`; ${command} exists, but ${missing}`);
        expect(sluice.events("child.started")).toEqual([]);
      }
    }, 60_000);

    test("a command that cannot be run (not on PATH, a directory, not executable, no #! line): exit 78 saying why, in the same words on both runtimes", async () => {
      const dir = tempDir();
      writeFileSync(join(dir, "app.sh"), "#!/bin/sh\nexec sleep 600\n", { mode: 0o644 });
      const script = (name: string, text: string) => (writeFileSync(join(dir, name), text, { mode: 0o755 }), join(dir, name));
      // The runtimes said "Executable not found in $PATH" (Bun) or "entity not found" (Deno), and
      // "permission denied" for a directory or a file without its execute bit, with no hint of which.
      const path = "/usr/bin:/bin";
      const cases = [
        [["sluice-test-no-such-command", "s"], `"sluice-test-no-such-command" is not found in any directory of PATH (${path})`],
        // The harness runs sluice in the repository's root, where compile.sh is.
        [["compile.sh"], `"compile.sh" is not found in any directory of PATH (${path}); a file of that name is in the working directory: name it with its path, ./compile.sh`],
        [[dir], `permission denied: ${dir} is a directory, not a program`],
        [[join(dir, "app.sh")], `permission denied: ${join(dir, "app.sh")} is not executable (chmod +x ${join(dir, "app.sh")})`],
        // Deno's spawn ran these with /bin/sh (execvp), where the binary refused them: a script
        // without a #! line served from source only, and an empty file "exited 0 before it was ready".
        [[script("no-shebang.sh", "exec sleep 600\n")], `${join(dir, "no-shebang.sh")} is neither a program for this system nor a script with a #! line (begin it with one, such as #!/bin/sh)`],
        [[script("empty", "")], `${join(dir, "empty")} is neither a program for this system nor a script with a #! line (begin it with one, such as #!/bin/sh)`],
      ] as const;
      for (const [command, reason] of cases) {
        const sluice = await startSluice(target, { child: [...command], waitReady: false, env: { PATH: path } });
        expect(await sluice.exitCode()).toBe(78);
        const failed = sluice.events("start.failed");
        expect(failed).toHaveLength(1);
        expect(failed[0]!.error).toBe(`Cannot start the child "${command.join(" ")}": ${reason}`);
        expect(sluice.events("child.started")).toEqual([]);
      }
    }, 60_000);
  });

  test("stop: what the child leaves in its group when it exits on the stop signal gets the rest of --stop-timeout to finish", async () => {
    // A worker of the app's that needs 1.5 s to shut down cleanly, beside the app, which exits at once on TERM
    // (as a wrapper script without exec dies at once and leaves the app it started in the group).
    const worker = `trap "sleep 1.5; echo worker cleaned up; exit 0" TERM; while :; do sleep 0.1; done`;
    const sluice = await startSluice(target, {
      args: [...QUICK_STOP, "--stop-timeout", "10s"],
      child: ["bash", "-c", `bash -c '${worker}' & exec "$0" "$1"`, ...FIXTURE_APP],
    });
    const pgid = sluice.childPid!;
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.otherLines).toContain("worker cleaned up");
    expect(sluice.events("child.kill")).toEqual([]);
    const last = sluice.records.at(-1)!;
    expect(last).toMatchObject({ event: "shutdown.complete", exitCode: 0, killed: 0 });
    expect((last.phases as Record<string, number>)["stop-child"]).toBeGreaterThanOrEqual(1400);
    await groupGone(pgid);
  }, 60_000);

  describe("under an init that collects orphans late (tests/fixtures/late-init.py)", () => {
    // An orphan of the child's group that has exited stays a zombie until init collects it,
    // and kill(-pgid, 0) counts it: the group looked alive, though nothing in it ran.
    const underLateInit: Target = { ...target, command: ["python3", join(import.meta.dir, "../fixtures/late-init.py"), ...target.command] };
    // A background job of a shell that exited at once: an orphan, which exits 200 ms later. Then the app.
    const child = ["sh", "-c", `sh -c 'sleep 0.2 &'; exec "$0" "$1"`, ...FIXTURE_APP];
    const onlyZombies = async (pgid: number) => {
      await until(() => groupProcesses(pgid).every((p) => p.state === "Z" || p.pid === pgid), 10_000, "the orphan exited");
      expect(groupProcesses(pgid).filter((p) => p.pid !== pgid).map((p) => p.state)).toEqual(["Z"]);
    };

    test("stop: a group whose processes all exited, though init has not collected them all, is gone: no SIGKILL, exit 0", async () => {
      const sluice = await startSluice(underLateInit, { args: [...QUICK_STOP, "--stop-timeout", "2s"], child });
      await onlyZombies(sluice.childPid!);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(sluice.events("child.kill")).toEqual([]);
      const last = sluice.records.at(-1)!;
      expect(last).toMatchObject({ event: "shutdown.complete", exitCode: 0, killed: 0 });
      expect((last.phases as Record<string, number>)["stop-child"]).toBeLessThan(1500);
    }, 60_000);

    test("--restart: a crashed child whose group holds only exited processes is restarted without a child.leftovers-killed record", async () => {
      const sluice = await startSluice(underLateInit, {
        args: [...QUICK_STOP, "--restart", "on-failure"],
        env: { APP_EXIT_AFTER_MS: "1500", APP_EXIT_CODE: "1" },
        child,
      });
      const first = sluice.childPid!;
      await onlyZombies(first);
      await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== first);
      expect(sluice.events("child.leftovers-killed")).toEqual([]);
      sluice.signal("SIGTERM");
      await sluice.exitCode();
    }, 60_000);
  });

  test("at --log-level warning, a stop that had to SIGKILL still ends with its shutdown complete record; a clean one stays quiet", async () => {
    const run = async (env: Record<string, string>) => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--stop-timeout", "500ms", "--log-level", "warning"], env, waitReady: false });
      await until(async () => (await fetch(`${sluice.adminUrl}/readyz`).catch(() => undefined))?.status === 200, 30_000, "ready");
      sluice.signal("SIGTERM");
      return { code: await sluice.exitCode(), records: sluice.records };
    };
    const forced = await run({ APP_ON_TERM: "ignore" });
    expect(forced.code).toBe(75);
    expect(forced.records.at(-1)).toMatchObject({ event: "shutdown.complete", level: "WARNING", exitCode: 75, killed: 1 });
    const clean = await run({});
    expect(clean.code).toBe(0);
    expect(clean.records.filter((r) => r.event === "shutdown.complete")).toEqual([]);
  }, 60_000);

  test("stop ladder: a child that ignores SIGTERM is SIGKILLed with its whole group after --stop-timeout", async () => {
    // sh ignores TERM, leaves a `sleep` behind, and becomes the app, which ignores TERM too
    // and starts a `sleep` of its own: three processes in the child's group.
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--stop-timeout", "1s"],
      child: ["sh", "-c", 'trap "" TERM; sleep 600 & exec "$0" "$@"', ...FIXTURE_APP],
      env: { APP_ON_TERM: "ignore", APP_GRANDCHILD: "1" },
    });
    const pgid = sluice.childPid!;
    await until(() => groupProcesses(pgid).length >= 3, 10_000, "3 processes in the child's group");
    const before = performance.now();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(75);
    const elapsed = performance.now() - before;
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(5000);
    expect(sluice.events("child.kill")).toMatchObject([{ pid: pgid, timeoutMs: 1000 }]);
    const last = sluice.records.at(-1)!;
    expect(last).toMatchObject({ event: "shutdown.complete", killed: 1, exitCode: 75, childExitCode: 137 });
    // Nothing of the group runs any more (orphaned zombies may wait a moment for init).
    expect(groupProcesses(pgid).filter((p) => p.state !== "Z")).toEqual([]);
    await groupGone(pgid);
  }, 60_000);

  describe("restart policy", () => {
    test("--restart on-failure: the child is restarted with backoff and requests meanwhile are held", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--restart", "on-failure"],
        env: { APP_EXIT_AFTER_MS: "2000", APP_EXIT_CODE: "1", APP_BIND_DELAY_MS: "500", APP_GRANDCHILD: "1" },
      });
      const firstPid = sluice.childPid!;
      expect(await metric(sluice, "sluice_child_restarts_total")).toBe(0);
      await sluice.waitFor((r) => r.event === "child.exited" && r.pid === firstPid);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(503);
      const during = Array.from({ length: 5 }, () => fetch(`${sluice.url}/pid`).then(async (r) => [r.status, await r.text()] as const));
      const restarting = await sluice.waitFor("child.restarting");
      expect(restarting).toMatchObject({ delayMs: 250, attempt: 1, level: "WARNING" });
      const responses = await Promise.all(during);
      const secondPid = sluice.childPid!;
      expect(secondPid).not.toBe(firstPid);
      expect(responses).toEqual(Array(5).fill([200, String(secondPid)]));
      expect(await metric(sluice, "sluice_child_restarts_total")).toBeGreaterThanOrEqual(1);
      expect(await metric(sluice, 'sluice_child_state{state="ready"}')).toBe(1);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
      // What the crashed child left in its group (its `sleep`) went with it.
      expect(sluice.events("child.leftovers-killed")).toMatchObject([{ pgid: firstPid }]);
      await groupGone(firstPid);

      // The second crash comes soon after: the backoff grows.
      await sluice.waitFor((r) => r.event === "child.restarting" && r.attempt === 2);
      expect(sluice.events("child.restarting").slice(0, 2).map((r) => r.delayMs)).toEqual([250, 500]);
      await until(async () => (await metric(sluice, "sluice_child_restarts_total"))! >= 2, 10_000, "2 restarts on /metrics");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(accessRecords(sluice.records).map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    }, 60_000);

    test("--restart on-failure: a request the crashing child refuses before sluice notices its exit waits for the restart", async () => {
      const sluice = await startSluice(target, { args: [...QUICK_STOP, "--restart", "on-failure"] });
      const firstPid = sluice.childPid!;
      // The app stops listening at once and exits 1 a moment later: until then sluice counts it as ready.
      const app = `http://127.0.0.1:${sluice.targetPort}`;
      expect(await (await fetch(`${app}/close-listener?exitAfterMs=400`)).text()).toBe("closing\n");
      await until(() => refuses(sluice.targetPort), 10_000, "the app to stop listening");
      // Sent while the app refuses but has not exited yet (it was a 502).
      const response = await fetch(`${sluice.url}/pid`, { headers: { "x-request-id": "refused-by-crash" } });
      expect(response.status).toBe(200);
      const secondPid = sluice.childPid!;
      expect(secondPid).not.toBe(firstPid);
      expect(await response.text()).toBe(String(secondPid));
      expect((await sluice.waitFor((r) => r.event === "access" && r.requestId === "refused-by-crash")).status).toBe(200);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("--restart on-failure: a refused request the child does not come back for within --hold-timeout gets 503 with Retry-After, as a held one", async () => {
      // Every start binds 3 s late, so the restarted child is not back within the 500 ms hold.
      const sluice = await startSluice(target, { args: [...QUICK_STOP, "--restart", "on-failure", "--hold-timeout", "500ms"], env: { APP_BIND_DELAY_MS: "3000" } });
      const app = `http://127.0.0.1:${sluice.targetPort}`;
      expect(await (await fetch(`${app}/close-listener?exitAfterMs=400`)).text()).toBe("closing\n");
      await until(() => refuses(sluice.targetPort), 10_000, "the app to stop listening");
      const response = await fetch(`${sluice.url}/pid`, { headers: { "x-request-id": "not-back-in-time" } });
      // It was a 502, blaming an app that was restarting, where a held request gets 503.
      expect([response.status, response.headers.get("retry-after")]).toEqual([503, "1"]);
      const record = await sluice.waitFor((r) => r.event === "access" && r.requestId === "not-back-in-time");
      expect(record.status).toBe(503);
      expect(record.upstreamError).toBeString(); // why it was held: the refused connection
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("--restart on-failure: a GET the child dies on before answering goes again to the restarted child; a POST gets 502", async () => {
      const sluice = await startSluice(target, { args: [...QUICK_STOP, "--restart", "on-failure"] });
      const firstPid = sluice.childPid!;
      const get = fetch(`${sluice.url}/slow?ms=1500`, { headers: { "x-request-id": "get-at-crash" } });
      const post = fetch(`${sluice.url}/slow?ms=1500`, { method: "POST", body: "order", headers: { "x-request-id": "post-at-crash" } });
      const app = `http://127.0.0.1:${sluice.targetPort}`;
      await until(async () => (await (await fetch(`${app}/in-flight`)).text()) === "2", 10_000, "both requests in the app");
      // As a master SIGKILLed with its workers mid-request: the connections reset, nothing answered.
      process.kill(firstPid, "SIGKILL");
      const [getResponse, postResponse] = await Promise.all([get, post]);
      expect([getResponse.status, await getResponse.text()]).toEqual([200, "slow 1500\n"]);
      expect(postResponse.status).toBe(502);
      expect(sluice.childPid).not.toBe(firstPid);
      // The restarted child saw the GET once, and never the POST: a POST must not run twice.
      expect(await (await fetch(`${app}/seen`)).json()).toEqual(["/slow?ms=1500"]);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("--restart on-failure: a PUT with Content-Length: 0 the child dies on goes again, as one without a body (Deno hands it over as a stream)", async () => {
      const sluice = await startSluice(target, { args: [...QUICK_STOP, "--restart", "on-failure"] });
      const firstPid = sluice.childPid!;
      const put = fetch(`${sluice.url}/slow?ms=1500`, { method: "PUT", headers: { "content-length": "0", "x-request-id": "put-at-crash" } });
      const app = `http://127.0.0.1:${sluice.targetPort}`;
      await until(async () => (await (await fetch(`${app}/in-flight`)).text()) === "1", 10_000, "the request in the app");
      process.kill(firstPid, "SIGKILL");
      const response = await put;
      expect([response.status, await response.text()]).toEqual([200, "slow 1500\n"]);
      expect(await (await fetch(`${app}/seen`)).json()).toEqual(["/slow?ms=1500"]);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);

    test("--restart on-failure does not restart a child that exits 0; sluice exits 0", async () => {
      const sluice = await startSluice(target, {
        args: ["--restart", "on-failure"],
        env: { APP_EXIT_AFTER_MS: "1000", APP_EXIT_CODE: "0" },
      });
      expect(await sluice.exitCode()).toBe(0);
      expect(sluice.events("child.restarting")).toEqual([]);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", reason: "child exited with code 0" });
    }, 60_000);

    test("a restarted child not ready within --ready-timeout: sluice stops with 78, saying the restart failed", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--restart", "on-failure", "--ready-timeout", "1500ms"],
        child: appStartingDifferently("export APP_BIND_DELAY_MS=60000"),
      });
      const firstPid = sluice.childPid!;
      process.kill(firstPid, "SIGKILL");
      expect(await sluice.exitCode()).toBe(78);
      const [failed] = sluice.events("child.restart-failed");
      expect(failed!.error).toContain("The child did not become ready within --ready-timeout 1.5s");
      // Not "child exited with code 78": no child did.
      expect(sluice.events("stop.begin")).toMatchObject([{ reason: "the child's restart failed" }]);
      expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", reason: "the child's restart failed", exitCode: 78 });
      const restarted = sluice.events("child.started").at(-1)!.pid as number;
      expect(restarted).not.toBe(firstPid);
      await groupGone(restarted);
    }, 60_000);

    test("the restart backoff doubles and is capped by --restart-max-delay", async () => {
      const sluice = await startSluice(target, {
        args: [...QUICK_STOP, "--restart", "always", "--restart-max-delay", "1s"],
        child: ["sh", "-c", "exit 1"],
        waitReady: false,
      });
      await until(() => sluice.events("child.started").length >= 6, 30_000, "6 child starts");
      const delays = sluice.events("child.restarting").slice(0, 5).map((r) => r.delayMs);
      expect(delays).toEqual([250, 500, 1000, 1000, 1000]);
      // Each restart waits its delay after the exit before it.
      const exits = sluice.events("child.exited").map((r) => Date.parse(r["@timestamp"] as string));
      const starts = sluice.events("child.started").map((r) => Date.parse(r["@timestamp"] as string));
      for (let i = 0; i < 5; i++) expect(starts[i + 1]! - exits[i]!).toBeGreaterThanOrEqual((delays[i] as number) - 5);
      expect(await metric(sluice, "sluice_child_restarts_total")).toBeGreaterThanOrEqual(5);
      expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(503);
      const before = performance.now();
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
      expect(performance.now() - before).toBeLessThan(8000);
    }, 60_000);
  });

  test("the child's stdout and stderr arrive whole, in order, line by line, among the access records", async () => {
    const sluice = await startSluice(target, { args: QUICK_STOP });
    const lines = 20_000;
    const width = 120;
    let loading = true;
    const statuses: number[] = [];
    const loader = async () => {
      while (loading) {
        const response = await fetch(`${sluice.url}/slow?ms=0`);
        await response.text();
        statuses.push(response.status);
      }
    };
    const loaders = Array.from({ length: 8 }, loader);
    await until(() => statuses.length >= 50, 20_000, "load before printing");
    // Chunks of 997 bytes split lines; stdout and stderr are written alternately.
    const printed = await fetch(`${sluice.url}/print?lines=${lines}&width=${width}&chunk=997`);
    expect(await printed.json()).toEqual({ lines });
    await until(() => sluice.otherLines.filter((l) => l.startsWith("out ")).length >= lines, 30_000, "every stdout line");
    await until(() => sluice.stderr.split("\n").filter((l) => l.startsWith("err ")).length >= lines, 30_000, "every stderr line");
    loading = false;
    await Promise.all(loaders);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);

    const expected = (stream: "out" | "err") => Array.from({ length: lines }, (_, i) => printedLine(stream, i, width));
    // Every non-JSON stdout line is the app's own, intact: nothing was cut into a record.
    expect(sluice.otherLines.filter((l) => !l.startsWith("fixture app listening"))).toEqual(expected("out"));
    expect(sluice.stderr.split("\n").filter((l) => l !== "")).toEqual(expected("err"));
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(accessRecords(sluice.records).length).toBe(statuses.length + 1);
  }, 90_000);

  test("the child gets PORT, and none of NOTIFY_SOCKET, WATCHDOG_*, LISTEN_*", async () => {
    const sluice = await startSluice(target, {
      args: QUICK_STOP,
      env: {
        NOTIFY_SOCKET: join(tempDir(), "no-such-notify-socket"),
        WATCHDOG_USEC: "30000000",
        WATCHDOG_PID: "1",
        LISTEN_FDS: "1",
        LISTEN_PID: "1",
        LISTEN_FDNAMES: "http",
        SLUICE_TEST_PASSED_THROUGH: "yes",
      },
    });
    const env = (await (await fetch(`${sluice.url}/env`)).json()) as Record<string, string>;
    expect(env.PORT).toBe(String(sluice.targetPort));
    expect(env.SLUICE_TEST_PASSED_THROUGH).toBe("yes");
    for (const name of ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) {
      expect(env[name], name).toBeUndefined();
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("on the binary, sluice starts itself over once (same PID, same argument bytes) with mimalloc's purge delay raised; the child gets the environment as given", async () => {
    const processEnv = (pid: number) =>
      Object.fromEntries(readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").filter(Boolean).map((entry) => {
        const equals = entry.indexOf("=");
        return [entry.slice(0, equals), entry.slice(equals + 1)];
      }));
    const childEnv = async (sluice: Sluice) => (await (await fetch(`${sluice.url}/env`)).json()) as Record<string, string>;
    // An argument that is no UTF-8 text (here the byte 0xFF, last, so the child's) would not
    // survive a decode and encode: the start-over passes the bytes on.
    const withByteArgument = { ...target, command: ["sh", "-c", `exec "$@" "$(printf '\\377')"`, "sh", ...target.command] };
    const sluice = await startSluice(withByteArgument, {
      args: QUICK_STOP,
      env: { MIMALLOC_PURGE_DELAY: undefined, SLUICE_TEST_PASSED_THROUGH: "yes" },
    });
    // /proc/<pid>/environ is what the process's image was started with: the start-over's, on
    // the binary, in the very process the harness spawned.
    const own = processEnv(sluice.proc.pid);
    expect(own.MIMALLOC_PURGE_DELAY).toBe(target.name === "binary" ? "1000" : undefined);
    expect(readFileSync(`/proc/${sluice.proc.pid}/cmdline`, "latin1").split("\0").slice(-3)).toEqual([FIXTURE_APP.at(-1)!, "\xff", ""]);
    const env = await childEnv(sluice);
    expect(env.SLUICE_TEST_PASSED_THROUGH).toBe("yes");
    expect(Object.keys(env).filter((name) => /MIMALLOC|_SLUICE_/.test(name))).toEqual([]);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);

    // A delay the user set is theirs: kept for sluice and the child, and no start-over.
    const given = await startSluice(target, { args: QUICK_STOP, env: { MIMALLOC_PURGE_DELAY: "250" } });
    expect(processEnv(given.proc.pid).MIMALLOC_PURGE_DELAY).toBe("250");
    expect(Object.keys(processEnv(given.proc.pid)).filter((name) => name.startsWith("_SLUICE_"))).toEqual([]);
    expect((await childEnv(given)).MIMALLOC_PURGE_DELAY).toBe("250");
    given.signal("SIGTERM");
    expect(await given.exitCode()).toBe(0);
  }, 60_000);

  test("a command that only prints or asks (version, help, check, healthcheck) does not start over", async () => {
    // MIMALLOC_VERBOSE=1 makes mimalloc print its options as each process image starts: once
    // for a command that runs as started, twice (100, then 1000) for one that started over.
    const verbose = { MIMALLOC_VERBOSE: "1", MIMALLOC_PURGE_DELAY: undefined };
    const purgeDelays = (stderr: string) => stderr.match(/option 'purge_delay': \d+/g) ?? [];
    const commands = [["version"], ["--help"], ["check", "--", "true"], ["healthcheck", `http://127.0.0.1:${freePort()}/readyz`]];
    for (const args of commands) {
      const { stderr } = await runSluice(target, args, verbose);
      // Deno's allocator is the system's: mimalloc prints nothing there.
      expect({ args, delays: purgeDelays(stderr) }).toEqual({ args, delays: target.name === "binary" ? ["option 'purge_delay': 100"] : [] });
    }
  }, 60_000);

  test("HTTP_PROXY meant for the app diverts none of sluice's own requests to it", async () => {
    // A proxy that refuses everything: a request sent to it fails.
    const proxy = `http://127.0.0.1:${freePort()}`;
    const proxyEnv = { HTTP_PROXY: proxy, http_proxy: proxy, ALL_PROXY: proxy, all_proxy: proxy };
    const sluice = await startSluice(target, {
      args: [...QUICK_STOP, "--ready-path", "/ready", "--ready-timeout", "10s"],
      env: proxyEnv,
    });
    const response = await fetch(`${sluice.url}/env`);
    expect(response.status).toBe(200);
    // The app still gets the variables: they are for its own outbound requests.
    expect(((await response.json()) as Record<string, string>).HTTP_PROXY).toBe(proxy);
    const check = await runSluice(target, ["healthcheck", `${sluice.adminUrl}/readyz`], proxyEnv);
    expect(check).toMatchObject({ code: 0, stderr: "" });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("admin: /livez, /readyz and /metrics", async () => {
    const sluice = await startSluice(target, { args: QUICK_STOP });
    const livez = await fetch(`${sluice.adminUrl}/livez`);
    expect(livez.status).toBe(200);
    const readyz = await fetch(`${sluice.adminUrl}/readyz`);
    expect(readyz.status).toBe(200);
    expect((await readyz.text()).trim()).toBe("ready");
    for (let i = 0; i < 3; i++) await (await fetch(`${sluice.url}/`)).text();
    await (await fetch(`${sluice.url}/status?code=404`)).text();
    await until(async () => (await metricsText(sluice)).includes('sluice_requests_total{code="404"} 1'), 5000, "the 404 counted");

    const response = await fetch(`${sluice.adminUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    const text = await response.text();
    expect(text).toContain("# TYPE sluice_requests_in_flight gauge\nsluice_requests_in_flight 0\n");
    expect(text).toContain('# TYPE sluice_requests_total counter\n');
    expect(text).toContain('sluice_requests_total{code="200"} 3\n');
    expect(text).toContain("# TYPE sluice_request_duration_seconds histogram\n");
    expect(text).toContain('sluice_request_duration_seconds_bucket{le="+Inf"} 4\n');
    expect(text).toContain("sluice_request_duration_seconds_count 4\n");
    expect(text).toMatch(/\nsluice_request_duration_seconds_sum \d+(\.\d+)?(e-\d+)?\n/);
    expect(text).toContain("# TYPE sluice_child_restarts_total counter\nsluice_child_restarts_total 0\n");
    expect(text).toContain('sluice_child_state{state="ready"} 1\n');
    expect(text).toContain('sluice_child_state{state="starting"} 0\n');
    expect(text).toContain("sluice_ready 1\n");
    // Histogram buckets are cumulative.
    const buckets = [...text.matchAll(/sluice_request_duration_seconds_bucket\{le="[^"]+"\} (\d+)/g)].map((m) => Number(m[1]));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));

    const inFlight = fetch(`${sluice.url}/slow?ms=1500`);
    await until(async () => (await metric(sluice, "sluice_requests_in_flight")) === 1, 5000, "1 in flight");
    expect((await inFlight).status).toBe(200);
    expect((await fetch(`${sluice.adminUrl}/nothing`)).status).toBe(404);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("/metrics: label values known in advance are 0 from the start; a labelled family has no unlabelled sample", async () => {
    const sluice = await startSluice(target, { args: QUICK_STOP });
    const text = await metricsText(sluice);
    // A series that appears only with its first increment hides that increment from increase().
    expect(text).toContain('sluice_reloads_total{result="ok"} 0\n');
    expect(text).toContain('sluice_reloads_total{result="error"} 0\n');
    expect(text).toContain('sluice_cache_events_total{event="hit"} 0\n');
    for (const family of ["sluice_requests_total", "sluice_reloads_total", "sluice_shutdown_phase_seconds", "sluice_cache_events_total", "sluice_child_state"]) {
      expect({ family, unlabelled: new RegExp(`^${family} `, "m").test(text) }).toEqual({ family, unlabelled: false });
    }
    // Families still declare themselves before their first sample.
    expect(text).toContain("# TYPE sluice_requests_total counter\n# HELP sluice_request_duration_seconds");
    sluice.signal("SIGHUP");
    await sluice.waitFor("reload");
    expect(await metricsText(sluice)).toContain('sluice_reloads_total{result="ok"} 1\n');
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  describe("healthcheck", () => {
    test("exits 0 when sluice is ready, 1 when it is not, 1 when nothing listens", async () => {
      const ready = await startSluice(target);
      expect(await runSluice(target, ["healthcheck", `${ready.adminUrl}/readyz`])).toMatchObject({ code: 0 });

      const starting = await startSluice(target, { env: { APP_BIND_DELAY_MS: "600000" }, waitReady: false });
      await starting.waitFor("listening");
      const notReady = await runSluice(target, ["healthcheck", `${starting.adminUrl}/readyz`]);
      expect(notReady.code).toBe(1);
      expect(notReady.stderr).toContain("not ready");

      const nobody = await runSluice(target, ["healthcheck", `http://127.0.0.1:${freePort()}/readyz`]);
      expect(nobody.code).toBe(1);

      // A URL that is none is a usage error naming it, not "not ready".
      for (const url of ["127.0.0.1:9000/readyz", "https://127.0.0.1:9000/readyz", "http:/readyz"]) {
        const typo = await runSluice(target, ["healthcheck", url]);
        expect({ url, code: typo.code }).toEqual({ url, code: 64 });
        expect(typo.stderr).toContain(`Invalid healthcheck URL "${url}"`);
      }

      // While stopping, /readyz is 503: not ready.
      ready.signal("SIGTERM");
      await ready.waitFor("stop.begin");
      expect((await runSluice(target, ["healthcheck", `${ready.adminUrl}/readyz`])).code).toBe(1);
      expect(await ready.exitCode()).toBe(0);
    }, 60_000);

    test("a server that accepts and never answers, or redirects, is not ready: exit 1, within 3 s and a margin", async () => {
      const port = freePort();
      const silent = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
      const redirectPort = freePort();
      const redirect = Bun.listen({
        hostname: "127.0.0.1",
        port: redirectPort,
        socket: { data: (socket) => void socket.write("HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n") },
      });
      try {
        const startedAt = performance.now();
        const hung = await runSluice(target, ["healthcheck", `http://127.0.0.1:${port}/readyz`]);
        expect(hung.code).toBe(1);
        expect(performance.now() - startedAt).toBeLessThan(15_000);
        expect(hung.stderr).toContain("not ready");
        const moved = await runSluice(target, ["healthcheck", `http://127.0.0.1:${redirectPort}/readyz`]);
        expect(moved).toMatchObject({ code: 1 });
        expect(moved.stderr).toContain("answered 302");
      } finally {
        silent.stop(true);
        redirect.stop(true);
      }
    }, 60_000);

    test("without a URL it asks SLUICE_ADMIN_LISTEN's /readyz, whatever other variables say", async () => {
      const sluice = await startSluice(target, { args: QUICK_STOP });
      const env = { SLUICE_ADMIN_LISTEN: `127.0.0.1:${sluice.adminPort}` };
      expect((await runSluice(target, ["healthcheck"], env)).code).toBe(0);
      // An unrelated bad variable does not fail the healthcheck.
      expect((await runSluice(target, ["healthcheck"], { ...env, SLUICE_DRAIN_TIMEOUT: "3x" })).code).toBe(0);
      expect((await runSluice(target, ["healthcheck"], { SLUICE_ADMIN_LISTEN: `127.0.0.1:${freePort()}` })).code).toBe(1);
      const off = await runSluice(target, ["healthcheck"], { SLUICE_ADMIN_LISTEN: "off" });
      expect(off.code).toBe(78);
      expect(off.stderr).toContain("SLUICE_ADMIN_LISTEN is off"); // named as given, not as a flag
      // Port 0 is picked at start: no URL can be derived from it, which is no "not ready".
      const zero = await runSluice(target, ["healthcheck"], { SLUICE_ADMIN_LISTEN: "127.0.0.1:0" });
      expect(zero.code).toBe(78);
      expect(zero.stderr).toContain("SLUICE_ADMIN_LISTEN is 127.0.0.1:0, which picks its port at start");
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 60_000);
  });

  describe("logs at exit", () => {
    test("every access record and the final record reach a slow stdout", async () => {
      const { proc, out, port } = startWithSlowStdout(target, ["--shutdown-delay", "0", "--flush-timeout", "60s"]);
      await out.waitFor("ready");
      // Stop reading while a few thousand records are written, then read slowly: 4 KiB per 5 ms.
      out.pausedUntil = performance.now() + 3000;
      const statuses = await load(`http://127.0.0.1:${port}`, 3000, 16);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      proc.kill("SIGTERM");
      out.pausedUntil = performance.now() + 1000;
      const code = await Promise.race([proc.exited, Bun.sleep(60_000).then(() => "timeout")]);
      expect(code).toBe(0);
      await out.ended;
      const access = accessRecords(out.records);
      expect(access.length).toBe(3000);
      expect(new Set(access.map((r) => r.requestId)).size).toBe(3000);
      expect(out.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
      expect(out.otherLines.filter((l) => !l.startsWith("fixture app listening"))).toEqual([]);
    }, 120_000);

    test("a stdout nobody reads neither stalls serving nor keeps sluice past --flush-timeout", async () => {
      const { proc, out, port } = startWithSlowStdout(target, ["--shutdown-delay", "0", "--flush-timeout", "1s"]);
      await out.waitFor("ready");
      out.pausedUntil = Infinity;
      // About 200 KiB of access records: far more than a pipe holds (64 KiB).
      const statuses = await load(`http://127.0.0.1:${port}`, 500, 8, 15_000);
      expect(statuses.filter((s) => s === 200).length, "requests answered while stdout was full").toBe(500);
      const before = performance.now();
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(10_000).then(() => "still running")]);
      expect(code).toBe(0);
      expect(performance.now() - before).toBeLessThan(4000);
      out.pausedUntil = 0;
      await out.ended;
    }, 60_000);

    test("a stdout whose reader went away: sluice serves on quietly and stops with 0", async () => {
      const { proc, out, port, stderr } = startWithSlowStdout(target, QUICK_STOP);
      await out.waitFor("ready");
      await out.stopReading();
      // Access records and the child's lines now meet a broken pipe, batch after batch.
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`http://127.0.0.1:${port}/print?lines=50&width=100`);
        expect(response.status).toBe(200);
        await response.arrayBuffer();
      }
      proc.kill("SIGTERM");
      expect(await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")])).toBe(0);
      // Only the child's own stderr lines; no error of sluice's about the pipe.
      expect((await stderr).split("\n").filter((l) => l !== "" && !l.startsWith("err "))).toEqual([]);
    }, 60_000);

    test("a child printing far faster than stdout is read waits for it: memory stays bounded and no line is lost", async () => {
      const dir = tempDir();
      const [go, progress, printed] = [join(dir, "go"), join(dir, "progress"), join(dir, "printed")];
      const LINES = 40_000; // 40 MB of 1000-byte lines: five times the output queue's bound
      // Once told to, the lines on stdout, noting every thousandth in `progress`; the app's own output goes to stderr.
      const script = [
        "import os, sys, time",
        `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.05)`,
        "line = b'a' * 999 + b'\\n'",
        `for i in range(${LINES}):`,
        "    sys.stdout.buffer.write(line)",
        "    if i % 1000 == 999:",
        "        sys.stdout.buffer.flush()",
        `        open(${JSON.stringify(progress)}, 'w').write(str(i + 1))`,
        "sys.stdout.buffer.flush()",
        `open(${JSON.stringify(printed)}, 'w')`,
      ].join("\n");
      const child = ["sh", "-c", `python3 -c "$0" & exec "$@" >&2`, script, ...FIXTURE_APP];
      const { proc, out, port } = startWithSlowStdout(target, QUICK_STOP, child);
      await out.waitFor("ready");
      out.pausedUntil = Infinity;
      const before = rssKiB(proc.pid);
      writeFileSync(go, "");
      const linesPrinted = () => (existsSync(progress) ? Number(readFileSync(progress, "utf8")) || 0 : 0);
      await until(() => linesPrinted() >= 1000, 30_000, "the child to start printing");
      // Absence over a window: for 4 s the child gets no further than the queue's 8 MiB
      // (sluice stopped reading its pipe); dropping lines or queueing them all, it printed all 40 MB.
      const watchUntil = performance.now() + 4_000;
      while (performance.now() < watchUntil) {
        expect(linesPrinted(), "lines the child printed while stdout was not read").toBeLessThan(16_000);
        await Bun.sleep(100);
      }
      expect(rssKiB(proc.pid) - before, "KiB sluice grew by").toBeLessThan(100 * 1024);
      expect((await fetch(`http://127.0.0.1:${port}/while-paused`)).status).toBe(200);
      out.chunkBytes = 65536;
      out.delayMs = 0;
      out.pausedUntil = 0;
      await until(() => existsSync(printed), 60_000, "the child to print everything");
      await until(() => out.otherLines.length >= LINES, 60_000, `${LINES} lines on sluice's stdout`);
      expect(out.otherLines.length).toBe(LINES);
      expect(out.otherLines.filter((l) => l !== "a".repeat(999))).toEqual([]);
      await out.waitFor("access"); // sluice's own record written while the queue was full is there too
      expect(out.records.some((r) => r.event === "access" && r.path === "/while-paused")).toBe(true);
      expect(out.records.filter((r) => r.event === "output.dropped")).toEqual([]);
      proc.kill("SIGTERM");
      expect(await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")])).toBe(0);
      await out.ended;
    }, 180_000);

    test("a child's line read while sluice's own records fill the stopped output is not dropped: it waits for room", async () => {
      const dir = tempDir();
      const [go, printed] = [join(dir, "go"), join(dir, "printed")];
      const TICKS = 3; // 60 KB in all: the pipe holds what sluice does not read meanwhile
      // An app that logs now and then: sluice waits to read its pipe while the access
      // records fill the output queue, and the app's next lines (20 KB: more than the room
      // a full queue has left) come only then.
      const script = [
        "import os, sys, time",
        `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.01)`,
        `for i in range(${TICKS}):`,
        "    sys.stdout.write(f'tick {i} ' + 'x' * 20000 + '\\n'); sys.stdout.flush(); time.sleep(0.05)",
        `open(${JSON.stringify(printed)}, 'w')`,
      ].join("\n");
      const child = ["sh", "-c", `python3 -c "$0" & exec "$@" >&2`, script, ...FIXTURE_APP];
      const { proc, out, port } = startWithSlowStdout(target, QUICK_STOP, child);
      await out.waitFor("ready");
      out.pausedUntil = Infinity;
      // About 10 MiB of access records (8 KiB paths): past the output queue's 8 MiB bound.
      const path = `/${"p".repeat(8 * 1024)}`;
      let next = 0;
      const worker = async () => {
        while (next++ < 1200) await (await fetch(`http://127.0.0.1:${port}${path}`)).arrayBuffer();
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      writeFileSync(go, "");
      await until(() => existsSync(printed), 30_000, "the child to print every tick");
      out.chunkBytes = 65536;
      out.delayMs = 0;
      out.pausedUntil = 0;
      await out.waitFor("output.dropped"); // sluice's own records were dropped, and said so
      proc.kill("SIGTERM");
      expect(await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")])).toBe(0);
      await out.ended;
      expect(out.otherLines.filter((l) => l.startsWith("tick ")).map((l) => l.slice(0, 6))).toEqual(Array.from({ length: TICKS }, (_, i) => `tick ${i}`));
    }, 120_000);

    test("a stop while sluice's own records fill the stuck output: the drops are reported before the shutdown record, which is not dropped and is last", async () => {
      const { proc, out, port } = startWithSlowStdout(target, [...QUICK_STOP, "--flush-timeout", "30s"]);
      await out.waitFor("ready");
      out.pausedUntil = Infinity;
      // About 9 MiB of access records (8 KiB paths): past the output queue's 8 MiB bound. Then
      // short ones, so that what room is left is less than one record of the stop's needs.
      const send = async (path: string, count: number) => {
        let next = 0;
        const worker = async () => {
          while (next++ < count) await (await fetch(`http://127.0.0.1:${port}${path}`)).arrayBuffer();
        };
        await Promise.all(Array.from({ length: 8 }, worker));
      };
      await send(`/${"p".repeat(8 * 1024)}`, 1100);
      await send("/", 300);
      proc.kill("SIGTERM");
      // The stop is over (its records written while the queue is still full) before stdout is read again.
      await Bun.sleep(1500);
      out.chunkBytes = 65536;
      out.delayMs = 0;
      out.pausedUntil = 0;
      expect(await Promise.race([proc.exited, Bun.sleep(40_000).then(() => "still running")])).toBe(0);
      await out.ended;
      const dropped = out.records.filter((r) => r.event === "output.dropped");
      expect(dropped.length).toBeGreaterThan(0);
      expect(out.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0 });
      expect(out.lines.at(-1)).toBe(JSON.stringify(out.records.at(-1)));
      // Every access record arrived or was counted among the dropped lines.
      const droppedLines = dropped.reduce((sum, r) => sum + Number(r.lines), 0);
      expect(accessRecords(out.records).length + droppedLines).toBeGreaterThanOrEqual(1400);
    }, 120_000);

    test("a stop while sluice's own records fill the stuck output and the child's lines wait for room: none of them is dropped", async () => {
      const { child, written } = numberedLines(1);
      const { proc, out, port } = startWithSlowStdout(target, [...QUICK_STOP, "--flush-timeout", "30s"], child);
      await out.waitFor("ready");
      out.pausedUntil = Infinity;
      await until(() => written() > 0, 30_000, "the child to print");
      // About 10 MiB of access records (8 KiB paths): past the output queue's 8 MiB bound, so
      // the child's lines wait for room, which sluice's own records keep taking.
      let next = 0;
      const path = `/${"p".repeat(8 * 1024)}`;
      const worker = async () => {
        while (next++ < 1200) await (await fetch(`http://127.0.0.1:${port}${path}`)).arrayBuffer();
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      let last = -1;
      await until(() => {
        const now = written();
        const still = now === last;
        last = now;
        return still;
      }, 30_000, "the child to wait for stdout");
      proc.kill("SIGTERM");
      await Bun.sleep(3000); // the stop is over: the child's group is gone, what was left in its pipe passed on
      out.chunkBytes = 65536;
      out.delayMs = 0;
      out.pausedUntil = 0;
      expect(await Promise.race([proc.exited, Bun.sleep(40_000).then(() => "still running")])).toBe(0);
      await out.ended;
      const lines = out.otherLines.filter((l) => l.startsWith("line "));
      expect(lines.length).toBeGreaterThanOrEqual(written());
      expect(lines.findIndex((l, i) => !l.startsWith(`line ${i} `))).toBe(-1);
      expect(out.records.at(-1)).toMatchObject({ event: "shutdown.complete" });
    }, 120_000);

    for (const stop of ["SIGTERM", "SIGQUIT"] as const) {
      test(`${stop} while stdout is paused and the child's output waits for it: every line it wrote comes before the shutdown record`, async () => {
        const { child, written } = numberedLines(100);
        const { proc, out } = startWithSlowStdout(target, [...QUICK_STOP, "--flush-timeout", "30s"], child);
        await out.waitFor("ready");
        out.pausedUntil = Infinity;
        // The child is held back: its count stops growing once sluice's queue is half full.
        let last = -1;
        await until(() => {
          const now = written();
          const still = now === last && now > 1000;
          last = now;
          return still;
        }, 30_000, "the child to wait for stdout");
        proc.kill(stop);
        await Bun.sleep(4000); // longer than the stop waits for the group (here up to 2 s for PID 1 to reap) and its output (1 s)
        out.chunkBytes = 65536;
        out.delayMs = 0;
        out.pausedUntil = 0;
        expect(await Promise.race([proc.exited, Bun.sleep(40_000).then(() => "still running")])).toBe(stop === "SIGTERM" ? 0 : 75);
        await out.ended;
        const lines = out.otherLines.filter((l) => l.startsWith("line "));
        expect(lines.length).toBeGreaterThanOrEqual(written());
        expect(lines.every((l, i) => l.startsWith(`line ${i} `))).toBe(true);
        expect(out.records.at(-1)).toMatchObject({ event: "shutdown.complete" });
        expect(out.lines.at(-1)).toBe(JSON.stringify(out.records.at(-1)));
      }, 90_000);
    }

    test("stdout and stderr on one pipe (2>&1, as a journal stream or `| tee`), read slowly: every line whole", async () => {
      const out = new SlowStdout();
      out.chunkBytes = 8192;
      out.delayMs = 1;
      const dir = tempDir();
      const printed = join(dir, "printed");
      const LINES = 5000;
      // 1000-byte lines as fast as they go, on stdout and stderr at once.
      const script = [
        "import os, threading",
        "def flood(fd, name):",
        `    for i in range(${LINES}): os.write(fd, (f'{name} {i} '.ljust(999, name[0]) + '\\n').encode())`,
        "t = threading.Thread(target=flood, args=(2, 'err')); t.start()",
        "flood(1, 'out'); t.join()",
        `open(${JSON.stringify(printed)}, 'w')`,
      ].join("\n");
      const port = freePort();
      const proc = Bun.spawn(
        [
          ...target.command,
          "--http-host", "127.0.0.1",
          "--http-port", String(port),
          "--target-port", String(freePort()),
          "--admin-listen", `127.0.0.1:${freePort()}`,
          ...QUICK_STOP,
          "--",
          "sh", "-c", `python3 -c "$0" & exec "$@" >/dev/null 2>&1`, script, ...FIXTURE_APP,
        ],
        { stdin: "ignore", stdout: out.writeFd, stderr: out.writeFd },
      );
      track(proc.pid);
      out.releaseWriteEnd();
      await out.waitFor("ready");
      await until(() => existsSync(printed), 60_000, "the child to print everything");
      await until(() => out.otherLines.length >= 2 * LINES, 60_000, `${2 * LINES} lines`).catch(() => {});
      proc.kill("SIGTERM");
      expect(await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")])).toBe(0);
      await out.ended;
      const whole = (name: string) => new RegExp(`^${name} \\d+ ${name[0]}+$`);
      expect(out.otherLines.filter((l) => l.length !== 999 || !(whole("out").test(l) || whole("err").test(l))).map((l) => l.slice(0, 80))).toEqual([]);
      for (const name of ["out", "err"]) {
        expect(out.otherLines.filter((l) => l.startsWith(`${name} `)).map((l) => l.split(" ")[1])).toEqual(Array.from({ length: LINES }, (_, i) => String(i)));
      }
    }, 120_000);
  });
});
