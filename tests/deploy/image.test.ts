/**
 * @module The FROM scratch image, two ways, with the same scenario: it serves, its
 * healthcheck (`sluice healthcheck`, there is no shell) turns healthy, a stop is the ordered
 * stop (a request in flight completes) and exits 0 well within the stop timeout, and as PID 1
 * it leaves no zombie after 1,110 orphans. First on dist/rootfs run as PID 1 in new PID,
 * mount and network namespaces (read-only root, tmpfs /tmp, non-root), then with the real
 * Docker engine (installed and started here when missing; skipped, saying why, only when no
 * engine can start), where a `docker stop` right after `docker run` is ordered too. Needs
 * root, as CI has.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { trackUntilEnd } from "../cleanup.ts";
import { BUN, childrenOf, freePort, loadUntil, ROOT, Sluice, track, until, zombiesUnder } from "../harness.ts";

const ROOTFS = join(ROOT, "dist/rootfs");
const USER = "65532:65532"; // the Dockerfile's USER
const STOP_TIMEOUT_S = 20;

/** Runs a command to completion; returns its exit code and output. */
async function run(command: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn(command, { env: { ...process.env, ...env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  track(proc.pid);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, stderr };
}

async function mustRun(command: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await run(command, env);
  if (result.code !== 0) throw new Error(`${command.join(" ")} exited ${result.code}: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** A test root filesystem: dist/rootfs plus the orphan app, compiled like the example app. */
let testRoot: string;

beforeAll(async () => {
  await mustRun([join(ROOT, "compile.sh"), "image"]);
  testRoot = mkdtempSync(join(ROOT, "dist/.image-test-")); // a copy of dist/rootfs, plus the orphan app
  cpSync(ROOTFS, join(testRoot, "rootfs"), { recursive: true });
  await mustRun([BUN, "build", join(ROOT, "tests/fixtures/orphan-app.ts"), "--compile", "--outfile", join(testRoot, "rootfs/orphan-app")]);
}, 300_000);

afterAll(() => rmSync(testRoot, { recursive: true, force: true }));

/** Checks sluice's records of a SIGTERM stop for the ordered stop, finished within `stopTimeoutMs`. */
function expectOrderedStop(sluice: Sluice, stopTimeoutMs: number): void {
  const steps = sluice.events("stop.phase").map((r) => r.step);
  expect(steps).toEqual(["shutdown-delay", "close-listener", "drain", "stop-child", "flush-traces", "close-admin"]);
  // The app heard of the stop only after sluice's listener was closed and the drain was over.
  const childExited = sluice.records.findIndex((r) => r.event === "child.exited");
  const drained = sluice.records.findIndex((r) => r.event === "stop.phase" && r.step === "drain");
  expect(childExited).toBeGreaterThan(drained);
  const complete = sluice.events("shutdown.complete")[0]!;
  expect(complete).toMatchObject({ reason: "SIGTERM", exitCode: 0, aborted: 0, killed: 0 });
  expect(complete.durationMs as number).toBeLessThan(stopTimeoutMs);
}

describe("dist/rootfs as PID 1 in new PID, mount and network namespaces", () => {
  let netns: string;

  beforeAll(async () => {
    netns = `sluice-img-${process.pid}`;
    await mustRun(["ip", "netns", "add", netns]);
    await mustRun(["ip", "-n", netns, "link", "set", "lo", "up"]);
  });

  afterAll(async () => {
    await run(["ip", "netns", "delete", netns]);
  });

  /** In the namespace: what `docker run --read-only --tmpfs /tmp --user 65532:65532 --network none` sets up. */
  function startContainer(root: string, args: string[]): { sluice: Sluice; unshare: ReturnType<typeof Bun.spawn> } {
    const setup = [
      "set -e",
      'root="$1"; shift',
      'mount --bind "$root" "$root"',
      'mount -o remount,bind,ro "$root"',
      'mount -t tmpfs -o mode=1777,size=16m tmpfs "$root/tmp"',
      'mount -t proc proc "$root/proc"',
      'mount -t tmpfs -o mode=755,size=64k tmpfs "$root/dev"',
      'for d in null zero full random urandom; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done',
      'mount -o remount,ro "$root/dev"',
      `exec chroot --userspec=${USER} "$root" "$@"`, // exec: sluice keeps PID 1
    ].join("\n");
    const unshare = Bun.spawn(
      ["ip", "netns", "exec", netns, "unshare", "--pid", "--mount", "--fork", "--kill-child", "sh", "-c", setup, "sh", root, ...args],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    track(unshare.pid);
    return { sluice: new Sluice(unshare, 8080, 9000, 3000), unshare };
  }

  /** Runs a command in the container's namespaces, as docker exec would (its root, its user). */
  function inContainer(pid1: number, command: string[]) {
    return run(["nsenter", "--target", String(pid1), "--net", "--mount", "--pid", "--root", "--wd", `--setuid=65532`, `--setgid=65532`, ...command]);
  }

  /** curl inside the namespace (the address exists only there); a path goes to sluice's port. */
  function curl(pathOrUrl: string, extra: string[] = []) {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : `http://127.0.0.1:8080${pathOrUrl}`;
    return run(["ip", "netns", "exec", netns, "curl", "-sS", "--max-time", "30", ...extra, url]);
  }

  /** One sample of sluice's /metrics, read inside the namespace. */
  async function metric(series: string): Promise<number> {
    const text = (await curl("http://127.0.0.1:9000/metrics")).stdout;
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : Number.NaN;
  }

  /** The host PID of the container's PID 1, once the setup shell has become sluice (exec). */
  async function pid1Of(unshare: ReturnType<typeof Bun.spawn>): Promise<number> {
    const comm = (pid: number) => (existsSync(`/proc/${pid}/comm`) ? readFileSync(`/proc/${pid}/comm`, "utf8").trim() : "");
    await until(() => childrenOf(unshare.pid).length === 1 && comm(childrenOf(unshare.pid)[0]!) === "sluice", 30_000, "sluice as PID 1");
    return childrenOf(unshare.pid)[0]!;
  }

  test("serves the compiled example app, turns healthy, and stops in order with 0", async () => {
    const { sluice, unshare } = startContainer(join(testRoot, "rootfs"), ["/sluice", "--shutdown-delay", "1s", "--", "/app"]);
    const pid1 = await pid1Of(unshare);
    const status = readFileSync(`/proc/${pid1}/status`, "utf8");
    expect(status).toMatch(/^NSpid:\s+\d+\s+1$/m); // PID 1 inside
    expect(status).toMatch(/^Uid:\s+65532\s/m); // not root
    await until(async () => (await inContainer(pid1, ["/sluice", "healthcheck"])).code === 0, 60_000, "healthcheck to pass");
    const served = await curl("/hello");
    expect(JSON.parse(served.stdout)).toMatchObject({ hello: "from the example app", path: "/hello" });

    const slow = curl("/slow?ms=1500", ["-o", "/dev/null", "-w", "%{http_code}"]); // in flight during the stop
    await until(async () => (await metric("sluice_requests_in_flight")) === 1, 10_000, "the slow request in flight");
    process.kill(pid1, "SIGTERM");
    expect((await slow).stdout).toBe("200");
    expect(await sluice.exitCode(STOP_TIMEOUT_S * 1000)).toBe(0);
    expectOrderedStop(sluice, STOP_TIMEOUT_S * 1000);
  }, 120_000);

  test("leaves no zombie after 1,110 orphans, and still gets its app's exit code", async () => {
    const { sluice, unshare } = startContainer(join(testRoot, "rootfs"), ["/sluice", "--", "/orphan-app"]);
    const pid1 = await pid1Of(unshare);
    await sluice.waitFor("ready", 60_000);
    expect(JSON.parse((await curl("/orphans?tree=10,10,10")).stdout)).toEqual({ orphans: 1110 });
    await until(async () => (await metric("sluice_orphans_reaped_total")) === 1110, 120_000, "1,110 orphans reaped");
    expect(zombiesUnder(pid1)).toBe(0);
    await curl("/exit?code=3");
    expect(await sluice.exitCode(30_000)).toBe(3);
  }, 180_000);
});

/** Docker: installs Debian's engine and starts it as RUNTIME-FACTS.md says, unless one answers. */
async function dockerEngine(): Promise<{ docker: string; stop: () => Promise<void> } | { skip: string }> {
  const docker = existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
  if ((await run([docker, "info"]).catch(() => ({ code: 1 }))).code === 0) return { docker, stop: async () => {} };
  if (!existsSync("/usr/sbin/dockerd")) {
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    const install = await run(["sh", "-c", "apt-get update -qq && apt-get install -y -qq docker.io"], env).catch((e) => ({ code: 1, stderr: String(e), stdout: "" }));
    if (install.code !== 0) return { skip: `docker.io could not be installed: ${install.stderr.trim().split("\n").pop()}` };
  }
  // Its log goes to a file: a pipe nobody reads would stall dockerd once full.
  const logFile = join(mkdtempSync(join(tmpdir(), "sluice-dockerd-")), "dockerd.log");
  const dockerd = Bun.spawn(
    ["/usr/sbin/dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
      "--default-ulimit", "nofile=1024:1024", "--default-ulimit", "nproc=1024:1024"],
    { stdin: "ignore", stdout: "ignore", stderr: Bun.file(logFile), detached: true },
  );
  trackUntilEnd(dockerd.pid, true);
  const stop = async () => {
    dockerd.kill("SIGTERM"); // it stops containerd and its shims itself
    await dockerd.exited;
  };
  try {
    await until(async () => (await run(["/usr/bin/docker", "info"])).code === 0 || dockerd.exitCode !== null, 60_000, "dockerd");
  } catch {
    // fall through: reported below
  }
  if (dockerd.exitCode !== null || (await run(["/usr/bin/docker", "info"])).code !== 0) {
    await stop().catch(() => {});
    return { skip: `no Docker engine could start here: ${readFileSync(logFile, "utf8").trim().split("\n").slice(-2).join(" / ")}` };
  }
  return { docker: "/usr/bin/docker", stop };
}

const engine = await dockerEngine();
if ("skip" in engine) console.warn(`skipping the Docker tests: ${engine.skip}`);

describe.skipIf("skip" in engine)("the image in the Docker engine", () => {
  const { docker, stop } = engine as { docker: string; stop: () => Promise<void> };
  const tag = `sluice-test:${process.pid}`;
  const orphanTag = `sluice-test-orphans:${process.pid}`;
  const containers: string[] = [];

  beforeAll(async () => {
    await mustRun([docker, "build", "-q", "-t", tag, ROOT], { DOCKER_BUILDKIT: "0" });
    // The orphan app beside sluice, as a user would add their own app's binary.
    writeFileSync(join(testRoot, "Dockerfile"), `FROM ${tag}\nCOPY rootfs/orphan-app /orphan-app\nCMD ["--", "/orphan-app"]\n`);
    writeFileSync(join(testRoot, ".dockerignore"), "*\n!rootfs/orphan-app\n");
    await mustRun([docker, "build", "-q", "-t", orphanTag, testRoot], { DOCKER_BUILDKIT: "0" });
  }, 300_000);

  afterAll(async () => {
    for (const name of containers) await run([docker, "rm", "-f", name]);
    await run([docker, "rmi", "-f", orphanTag, tag]);
    await stop();
  }, 120_000);

  /** `docker run` attached (its output is sluice's log), host network, free ports. */
  function runContainer(image: string, options: string[] = []) {
    const name = `sluice-test-${process.pid}-${containers.length}`;
    containers.push(name);
    const [http, target, admin] = [freePort(), freePort(), freePort()];
    const proc = Bun.spawn(
      [docker, "run", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "host", "--health-interval", "1s",
        "-e", `SLUICE_HTTP_PORT=${http}`, "-e", `SLUICE_TARGET_PORT=${target}`, "-e", `SLUICE_ADMIN_LISTEN=127.0.0.1:${admin}`,
        ...options, image],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    track(proc.pid);
    return { name, sluice: new Sluice(proc, http, admin, target) };
  }

  const inspect = async (name: string, format: string) => (await mustRun([docker, "inspect", "-f", format, name])).trim();

  test("serves, turns healthy, and `docker stop` is the ordered stop, exiting 0 within the stop timeout", async () => {
    const { name, sluice } = runContainer(tag, ["-e", "SLUICE_SHUTDOWN_DELAY=1s"]);
    // (docker inspect fails until `docker run` has created the container)
    await until(async () => (await run([docker, "inspect", "-f", "{{.State.Health.Status}}", name])).stdout.trim() === "healthy", 90_000, "healthy");
    expect(await inspect(name, "{{.Config.User}}")).toBe(USER);
    const hello = (await (await fetch(`${sluice.url}/hello`)).json()) as Record<string, unknown>;
    expect(hello).toMatchObject({ hello: "from the example app", path: "/hello" });

    const slow = fetch(`${sluice.url}/slow?ms=1500`); // in flight during the stop
    await until(async () => /^sluice_requests_in_flight 1$/m.test(await (await fetch(`${sluice.adminUrl}/metrics`)).text()), 10_000, "in flight");
    const started = performance.now();
    await mustRun([docker, "stop", "-t", String(STOP_TIMEOUT_S), name]);
    const stoppedMs = performance.now() - started;
    expect((await slow).status).toBe(200);
    expect(await sluice.exitCode(30_000)).toBe(0);
    expect(await inspect(name, "{{.State.ExitCode}}")).toBe("0");
    expect(stoppedMs).toBeLessThan(STOP_TIMEOUT_S * 1000);
    expectOrderedStop(sluice, STOP_TIMEOUT_S * 1000);
  }, 180_000);

  test("`docker stop` right after `docker run -d` is still the ordered stop: exit 0, never the SIGKILL (5 times)", async () => {
    // The stop lands while sluice boots (as PID 1, a signal with no handler yet is dropped):
    // with the binary's start-over not holding it back, 6 of 8 such stops waited for the SIGKILL.
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const name = `sluice-test-${process.pid}-${containers.length}`;
      containers.push(name);
      await mustRun([docker, "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--network", "none", tag]);
      await mustRun([docker, "stop", "-t", String(STOP_TIMEOUT_S), name]);
      codes.push(await inspect(name, "{{.State.ExitCode}}"));
    }
    expect(codes).toEqual(["0", "0", "0", "0", "0"]);
  }, 5 * (STOP_TIMEOUT_S + 30) * 1000);

  test("`docker kill --signal=USR2` is a rolling restart: a new app process takes over under load, no request fails", async () => {
    const { name, sluice } = runContainer(tag, ["-e", "SLUICE_SHUTDOWN_DELAY=0"]);
    await sluice.waitFor("ready", 60_000);
    const done = sluice.waitFor((r) => r.event === "rolling-restart", 60_000);
    // The example app answers with its pid (the container's).
    const load = loadUntil(sluice, done, { path: "/hello", pidOf: (body) => String(JSON.parse(body).pid) });
    await until(async () => /^sluice_requests_total\{[^}]*\} [1-9]/m.test(await (await fetch(`${sluice.adminUrl}/metrics`)).text()), 10_000, "the load's first answers");
    await mustRun([docker, "kill", "--signal=USR2", name]);
    const record = await done;
    const { answers, notReady } = await load;
    expect(record).toMatchObject({ result: "ok", killed: 0, exitCode: 0 });
    expect(answers.filter((a) => !a.startsWith("pid ")).slice(0, 5)).toEqual([]);
    expect(new Set(answers)).toEqual(new Set([`pid ${record.pid}`, `pid ${record.newPid}`]));
    expect(notReady).toBe(0);
    await mustRun([docker, "stop", "-t", String(STOP_TIMEOUT_S), name]);
    expect(await sluice.exitCode(30_000)).toBe(0);
  }, 180_000);

  test("as the container's PID 1 it leaves no zombie after 1,110 orphans", async () => {
    const { name, sluice } = runContainer(orphanTag);
    await sluice.waitFor("ready", 60_000);
    const pid1 = Number(await inspect(name, "{{.State.Pid}}"));
    expect(((await (await fetch(`${sluice.url}/orphans?tree=10,10,10`)).json()) as { orphans: number }).orphans).toBe(1110);
    await until(async () => /^sluice_orphans_reaped_total 1110$/m.test(await (await fetch(`${sluice.adminUrl}/metrics`)).text()), 120_000, "1,110 reaped");
    expect(zombiesUnder(pid1)).toBe(0);
    await mustRun([docker, "stop", "-t", String(STOP_TIMEOUT_S), name]);
    expect(await sluice.exitCode(30_000)).toBe(0);
  }, 180_000);
});
