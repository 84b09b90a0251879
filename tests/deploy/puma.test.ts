/**
 * @module A real Rack app on Puma (Debian's packages, installed with apt-get when missing) as
 * sluice's child, the way thruster runs a Rails app: ports from thruster's variables alone,
 * the proxy's headers as the app sees them, a streamed body, a file handed over by
 * Rack::Sendfile, a stop in which Puma's request in flight finishes before Puma hears
 * SIGTERM, and a rolling restart. On the binary and under Deno.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, ROOT, type Sluice, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

const APP = join(ROOT, "tests/deploy/fixtures/rack-app");
const PUMA = ["/usr/bin/puma", "-C", join(APP, "config/puma.rb"), join(APP, "config.ru")];
/** Files the app sends with Rack::Sendfile, and sluice may serve (--x-sendfile-dirs). */
const FILES = tempDir();
const REPORT = crypto.getRandomValues(new Uint8Array(1024 * 1024));

beforeAll(async () => {
  await ensurePuma();
  mkdirSync(join(FILES, "reports"), { recursive: true });
  writeFileSync(join(FILES, "reports/report.bin"), REPORT);
}, 600_000);

/** Puma and rack from Debian, as a test setup installs them on a fresh machine. */
async function ensurePuma(): Promise<void> {
  if (existsSync("/usr/bin/puma") && existsSync("/usr/bin/ruby")) {
    const check = Bun.spawn(["/usr/bin/ruby", "-e", 'require "rack"; require "puma"'], { stdout: "ignore", stderr: "ignore" });
    track(check.pid);
    if ((await check.exited) === 0) return;
  }
  const env = { ...(process.env as Record<string, string>), DEBIAN_FRONTEND: "noninteractive" };
  for (const command of [["apt-get", "update"], ["apt-get", "install", "-y", "puma", "ruby-rack"]]) {
    const proc = Bun.spawn(command, { env, stdout: "pipe", stderr: "pipe" });
    track(proc.pid);
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) throw new Error(`${command.join(" ")} failed (${code}): ${stderr.slice(-2000)}`);
  }
}

/** sluice in front of Puma with thruster's variables for the ports, as `thrust bin/rails server` would get. */
function startBehindPuma(target: (typeof TARGETS)[number], args: string[] = []): Promise<Sluice> {
  const [http, targetPort] = [freePort(), freePort()];
  return startSluice(target, {
    args: ["--shutdown-delay", "0", "--x-sendfile-dirs", FILES, ...args],
    env: { HTTP_PORT: String(http), TARGET_PORT: String(targetPort), APP_FILES: FILES },
    ports: { http, target: targetPort },
    child: PUMA,
  });
}

describe.each(TARGETS)("Puma behind sluice ($name)", (target) => {
  test("thruster's variables alone place sluice and Puma; the app sees the proxy's headers", async () => {
    const sluice = await startBehindPuma(target);
    const hello = await fetch(`${sluice.url}/`);
    expect([hello.status, await hello.text()]).toEqual([200, "hello from puma\n"]);
    const response = await fetch(`${sluice.url}/headers`, { headers: { "x-request-id": "rails-req-1" } });
    const seen = (await response.json()) as Record<string, string>;
    expect(response.headers.get("x-request-id")).toBe("rails-req-1");
    expect(seen).toMatchObject({
      HTTP_HOST: `127.0.0.1:${sluice.httpPort}`,
      HTTP_X_REQUEST_ID: "rails-req-1",
      HTTP_X_FORWARDED_FOR: "127.0.0.1",
      HTTP_X_FORWARDED_PROTO: "http",
      HTTP_X_SENDFILE_TYPE: "X-Sendfile",
    });
    expect(Number(seen.HTTP_X_REQUEST_START?.replace("t=", ""))).toBeGreaterThan(0);
    await stopCleanly(sluice);
  }, 120_000);

  test("a streamed body arrives chunk by chunk, as Puma writes it", async () => {
    const sluice = await startBehindPuma(target);
    const started = performance.now();
    const reader = (await fetch(`${sluice.url}/stream`)).body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("chunk 1\n");
    expect(performance.now() - started).toBeLessThan(1400); // Puma writes chunk 2 at 1.5 s
    let rest = "";
    for (let part = await reader.read(); !part.done; part = await reader.read()) rest += new TextDecoder().decode(part.value);
    expect(rest).toBe("chunk 2\nchunk 3\n");
    await stopCleanly(sluice);
  }, 120_000);

  test("a file Rack::Sendfile hands over is served by sluice, byte-exact and with ranges", async () => {
    const sluice = await startBehindPuma(target);
    const whole = await fetch(`${sluice.url}/files/reports/report.bin`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("x-sendfile")).toBeNull();
    expect(whole.headers.get("content-length")).toBe(String(REPORT.length));
    expect(Buffer.from(await whole.arrayBuffer()).equals(Buffer.from(REPORT))).toBe(true);
    const part = await fetch(`${sluice.url}/files/reports/report.bin`, { headers: { range: "bytes=100-199" } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(Buffer.from(REPORT.subarray(100, 200)))).toBe(true);
    await stopCleanly(sluice);
  }, 120_000);

  test("at stop, Puma's request in flight finishes before Puma hears SIGTERM; Puma exits gracefully", async () => {
    const sluice = await startBehindPuma(target);
    const slow = fetch(`${sluice.url}/slow?seconds=2`);
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_in_flight 1"));
    sluice.signal("SIGTERM");
    const answer = await slow;
    expect([answer.status, await answer.text()]).toEqual([200, "slow done\n"]);
    expect(await sluice.exitCode()).toBe(0);
    // sluice drained the request; then Puma, idle, stopped on its SIGTERM without a SIGKILL.
    expect(sluice.records.find((r) => r.event === "shutdown.complete")).toMatchObject({ drained: 1, aborted: 0, killed: 0 });
    expect(sluice.otherLines.some((line) => line.includes("Gracefully stopping"))).toBe(true);
  }, 120_000);

  test("a rolling restart (SIGUSR2) starts a second Puma; requests go on being answered, the old one finishes its request and stops gracefully", async () => {
    const sluice = await startBehindPuma(target);
    const slow = fetch(`${sluice.url}/slow?seconds=2`);
    await until(async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes("sluice_requests_in_flight 1"));
    const done = sluice.waitFor("rolling-restart", 60_000);
    sluice.signal("SIGUSR2");
    // Requests one after another on keep-alive connections while the second Puma boots.
    let settled = false;
    void done.finally(() => (settled = true));
    const statuses: number[] = [];
    for (let i = 0; i < 2000 && !settled; i++) statuses.push((await fetch(`${sluice.url}/`)).status);
    const answer = await slow;
    expect([answer.status, await answer.text()]).toEqual([200, "slow done\n"]);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    // Puma exits 143 once it has stopped gracefully (its raise_exception_on_sigterm default).
    expect(await done).toMatchObject({ result: "ok", aborted: 0, killed: 0, exitCode: 143 });
    expect((await done).drained).toBeGreaterThanOrEqual(1);
    expect(sluice.otherLines.some((line) => line.includes("Gracefully stopping"))).toBe(true);
    expect((await fetch(`${sluice.url}/`)).status).toBe(200);
    await stopCleanly(sluice);
  }, 120_000);
});

async function stopCleanly(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
}
