/**
 * @module The --config file end to end: check validates it, errors name file, line and key, a
 * running sluice takes its ports and settings from it, flags and variables win over it.
 */

import { describe, expect, test } from "bun:test";
import { existsSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { envName, OPTIONS } from "../../src/config.ts";
import { freePort, refuses, runSluice, startSluice, type Target, TARGETS, tempDir } from "../harness.ts";

/** Variables that would change what these tests see, removed from the inherited environment. */
const CLEAN_ENV = Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""]));

/** Writes `lines` to a new sluice.toml; returns its path. */
function writeConfig(lines: string[]): string {
  const path = join(tempDir(), "sluice.toml");
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

describe.each(TARGETS)("config file ($name)", (target) => {
  const run = (args: string[], env: Record<string, string> = {}) => runSluice(target, args, { ...CLEAN_ENV, ...env });

  test("check --config validates the file and prints the budget from it", async () => {
    const path = writeConfig([
      "# every kind of value",
      'shutdown-delay = "2s"',
      "drain-timeout = 10",
      'stop-timeout = "3s"',
      'flush-timeout = "500ms"',
      'grace-period = "20s"',
      'trusted-proxies = ["10.0.0.0/8", "127.0.0.1"]',
      "access-log = false",
      'max-request-body = "10MB"',
    ]);
    const { code, stdout, stderr } = await run(["check", "--config", path]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain("Configuration is valid.");
    expect(stdout).toMatch(/shutdown-delay +2s\n/);
    expect(stdout).toMatch(/drain-timeout +10s\n/);
    expect(stdout).toMatch(/stop-timeout +3s\n/);
    expect(stdout).toMatch(/flush-timeout +500ms\n/);
    expect(stdout).toMatch(/close-grace +500ms\n/);
    expect(stdout).toMatch(/total +16s\n/);
    expect(stdout).toMatch(/grace-period +20s +fits, 4s to spare/);
  }, 60_000);

  test("check --config with an invalid file exits 78 naming the file, the line and the key", async () => {
    const cases: [string[], string][] = [
      [['http-port = 8080', "", 'drain-timeout = "3x"'], 'line 3 (drain-timeout): expected a duration such as 250ms, 5s, 2m or plain seconds; current value is "3x"'],
      [['http-port = 8080', "# typo", 'drian-timeout = "3s"'], 'Unknown key "drian-timeout" in PATH line 3'],
      [['http-port = 8080', "drain-timeout = 15s"], "Invalid TOML in PATH line 2, column 19: illegal character in numeric literal"],
      [['http-port = 8080', "[server]", "port = 1"], 'Cannot use the table "server" in PATH line 2'],
      [['config = "/etc/other.toml"'], 'Cannot set "config" in PATH line 1'],
      // A typo of an OTEL_* key was taken as one sluice does not read: tracing silently off.
      [['http-port = 8080', 'OTEL_EXPORTER_OTLP_ENDPIONT = "http://127.0.0.1:4318"'], 'Unknown key "OTEL_EXPORTER_OTLP_ENDPIONT" in PATH line 2 (the OTEL_* keys sluice reads: '],
      // An array was joined with commas: into the directory "pub,lic", or split inside an item.
      [['public-dir = ["pub", "lic"]'], "line 1 (public-dir): expected one value, not an array"],
      [['x-sendfile-dirs = ["/srv/a,b"]'], 'line 1 (x-sendfile-dirs): item 1 holds a comma, which would split it in two: give each value as an item of its own; current value is "/srv/a,b"'],
    ];
    for (const [lines, expected] of cases) {
      const path = writeConfig(lines);
      const { code, stderr } = await run(["check", "--config", path]);
      expect(code).toBe(78);
      expect(stderr).toContain(expected.replace("PATH", path));
      expect(stderr).toContain(path);
    }

    const missing = join(tempDir(), "missing.toml");
    const gone = await run(["check", "--config", missing]);
    expect(gone.code).toBe(78);
    expect(gone.stderr).toBe(`sluice: Cannot read the configuration file ${missing} (--config): no such file\n`);
    const directory = await run(["check"], { SLUICE_CONFIG: tempDir() });
    expect(directory.code).toBe(78);
    expect(directory.stderr).toContain("(SLUICE_CONFIG): it is a directory");
    // In the same words on both runtimes (their own messages differed, and repeated the path).
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "");
    symlinkSync(join(dir, "loop-b"), join(dir, "loop-a"));
    symlinkSync(join(dir, "loop-a"), join(dir, "loop-b"));
    const reasons: [string, string][] = [
      [join(dir, "file", "sluice.toml"), "a part of the path is not a directory"],
      [join(dir, "loop-a"), "too many levels of symbolic links"],
      [join(dir, "x".repeat(300)), "the path is too long"],
    ];
    for (const [path, reason] of reasons) {
      const failed = await run(["check", "--config", path]);
      expect(failed.code).toBe(78);
      expect(failed.stderr).toBe(`sluice: Cannot read the configuration file ${path} (--config): ${reason}\n`);
      const page = await run(["check", "--bad-gateway-page", path]);
      expect(page.code).toBe(78);
      expect(page.stderr).toBe(`sluice: Cannot read the error page ${path} (--bad-gateway-page): ${reason}\n`);
    }
  }, 120_000);

  test("a configuration file past 1 MiB, or a device, is refused with the reason before it fills memory", async () => {
    // /dev/zero was read for ever (memory growing by GiBs), a mistaken log file read whole.
    const big = join(tempDir(), "big.toml");
    writeFileSync(big, `# ${"x".repeat(1024 * 1024)}\nhttp-port = 8080\n`);
    const fromPipe = join(tempDir(), "big.fifo");
    expect(Bun.spawnSync(["mkfifo", fromPipe]).exitCode).toBe(0);
    // The writer gets EPIPE once sluice has read past the bound and closed the pipe.
    const writer = Bun.spawn(["sh", "-c", `exec head -c 3000000 /dev/zero > ${fromPipe}`], { stderr: "ignore" });
    try {
      const cases: [string, string][] = [
        [big, "it is larger than 1048576 bytes"],
        ["/dev/zero", "it is neither a regular file nor a pipe"],
        [fromPipe, "it is larger than 1048576 bytes"],
      ];
      for (const [path, reason] of cases) {
        const failed = await run(["check", "--config", path]);
        expect(failed.stderr).toBe(`sluice: Cannot read the configuration file ${path} (--config): ${reason}\n`);
        expect(failed.code).toBe(78);
      }
      expect(await writer.exited).not.toBe(0);
    } finally {
      writer.kill("SIGKILL");
    }
  }, 120_000);

  test("healthcheck names the file's line when the file's admin-listen gives it no URL", async () => {
    // It said "--admin-listen is off", sending users to flags they never passed.
    const off = writeConfig(["http-port = 8080", 'admin-listen = "off"']);
    const offCheck = await run(["healthcheck", "--config", off]);
    expect(offCheck.code).toBe(78);
    expect(offCheck.stderr).toBe(`sluice: Cannot find the admin listener: ${off} line 2 (admin-listen) is off; pass the URL of /readyz\n`);
    const zero = writeConfig(['admin-listen = "[::1]:0"']);
    const zeroCheck = await run(["healthcheck"], { SLUICE_CONFIG: zero });
    expect(zeroCheck.code).toBe(78);
    expect(zeroCheck.stderr).toContain(`${zero} line 1 (admin-listen) is [::1]:0, which picks its port at start`);
  }, 60_000);

  test("invalid TOML on a very long line is shown cut around the column, not whole", async () => {
    // The lines around the error were printed whole: 400 kB on stderr for two long comment lines.
    const path = writeConfig([`# ${"x".repeat(200_000)}`, "log-level = debug", `# ${"y".repeat(200_000)}`]);
    const { code, stderr } = await run(["check", "--config", path]);
    expect(code).toBe(78);
    expect(stderr).toStartWith(`sluice: Invalid TOML in ${path} line 2, column 13: invalid value`);
    expect(stderr).toContain("\n2:  log-level = debug\n                ^\n");
    expect(stderr.length).toBeLessThan(1000);
  }, 60_000);

  test("a file that is not UTF-8 is refused naming its line; a BOM is fine", async () => {
    // A Latin-1 byte was read as U+FFFD: the file's path or value silently became another one.
    const latin1 = join(tempDir(), "sluice.toml");
    writeFileSync(latin1, Buffer.concat([Buffer.from('http-port = 8080\npublic-dir = "/srv/caf'), Buffer.from([0xe9]), Buffer.from('"\n')]));
    const bad = await run(["check", "--config", latin1]);
    expect(bad.code).toBe(78);
    expect(bad.stderr).toBe(`sluice: Invalid TOML in ${latin1} line 2: not valid UTF-8 (a TOML file is UTF-8)\n`);

    const bom = join(tempDir(), "sluice.toml");
    writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('drain-timeout = "7s"\n')]));
    const good = await run(["check", "--config", bom]);
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(/drain-timeout +7s/);
  }, 60_000);

  test("an OTEL_* timeout longer than a timer can wait is refused, from the file or the environment", async () => {
    // 2^31 ms or more fired after 1 ms: every export timed out at once and its spans were dropped.
    const path = writeConfig(['OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"', 'OTEL_EXPORTER_OTLP_TIMEOUT = "3000000000"']);
    const fromFile = await run(["check", "--config", path]);
    expect(fromFile.code).toBe(78);
    // Named by the file's line: it was named as a variable nobody had set.
    expect(fromFile.stderr).toBe(
      `sluice: Cannot parse ${path} line 2 (OTEL_EXPORTER_OTLP_TIMEOUT): expected whole milliseconds, at most 2147483647 (the longest a timer can wait); current value is "3000000000"\n`,
    );
    const fromEnv = await run(["check"], { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_BSP_EXPORT_TIMEOUT: "2592000000" });
    expect(fromEnv.code).toBe(78);
    expect(fromEnv.stderr).toContain("Cannot parse OTEL_BSP_EXPORT_TIMEOUT: expected whole milliseconds, at most 2147483647");
  }, 60_000);

  test("SLUICE_CONFIG names the file; flags and variables win over it", async () => {
    const path = writeConfig(['drain-timeout = "3x"', 'stop-timeout = "9s"', 'shutdown-delay = "1s"']);
    // The file's bad drain-timeout is hidden by the flag, its stop-timeout by the variable.
    const { code, stdout, stderr } = await run(["check", "--drain-timeout", "4s"], { SLUICE_CONFIG: path, SLUICE_STOP_TIMEOUT: "2s" });
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/shutdown-delay +1s\n/);
    expect(stdout).toMatch(/drain-timeout +4s\n/);
    expect(stdout).toMatch(/stop-timeout +2s\n/);

    const bad = await run(["check"], { SLUICE_CONFIG: path });
    expect(bad.code).toBe(78);
    expect(bad.stderr).toContain(`Cannot parse ${path} line 1 (drain-timeout)`);

    // --config wins over SLUICE_CONFIG.
    const other = writeConfig(['drain-timeout = "6s"']);
    const flag = await run(["check", "--config", other], { SLUICE_CONFIG: path });
    expect(flag.code).toBe(0);
    expect(flag.stdout).toMatch(/drain-timeout +6s\n/);
  }, 60_000);

  test("ports of the file that collide are named by the file's lines, not by flags never passed", async () => {
    const port = freePort();
    const path = writeConfig([`http-port = ${port}`, `admin-listen = "127.0.0.1:${port}"`]);
    const { code, stderr } = await run(["check", "--config", path]);
    expect(code).toBe(78);
    expect(stderr).toBe(`sluice: ${path} line 2 (admin-listen) and ${path} line 1 (http-port) both use port ${port}\n`);
    const child = writeConfig([`target-port = ${port}`, `http-port = ${port}`]);
    const both = await run(["check", "--config", child]);
    expect(both.code).toBe(78);
    expect(both.stderr).toBe(`sluice: ${child} line 2 (http-port) and ${child} line 1 (target-port) are both ${port}: the child needs a port of its own\n`);
  }, 60_000);

  test("an invalid file refuses to start the child", async () => {
    const marker = join(tempDir(), "child-ran");
    const path = writeConfig(['http-port = "eighty"']);
    const { code, stdout, stderr } = await run(["--config", path, "--", "sh", "-c", `touch ${marker}`]);
    expect(code).toBe(78);
    expect(stderr).toContain(`Cannot parse ${path} line 1 (http-port): expected a port number from 0 to 65535; current value is "eighty"`);
    expect(stdout).not.toContain("child.started");
    expect(existsSync(marker)).toBe(false);
  }, 30_000);

  test("a running sluice takes its ports and settings from the file; healthcheck finds its admin listener", async () => {
    const http = freePort();
    const app = freePort();
    const admin = freePort();
    const path = writeConfig([
      `http-port = ${http}`,
      `target-port = ${app}`,
      `admin-listen = "127.0.0.1:${admin}"`,
      'trusted-proxies = ["127.0.0.1"]',
      'max-request-body = "1KiB"',
      "access-log = false",
      "shutdown-delay = 0",
    ]);
    const sluice = await startSluice(target, { args: ["--config", path], env: CLEAN_ENV, ports: { http, target: app, admin } });
    expect(sluice.events("listening").length).toBeGreaterThan(0);

    // trusted-proxies: the client's X-Forwarded-For is kept and extended.
    const echo = await fetch(`${sluice.url}/echo`, { headers: { "x-forwarded-for": "203.0.113.7" } });
    expect(echo.status).toBe(200);
    expect(((await echo.json()) as { headers: Record<string, string> }).headers["x-forwarded-for"]).toBe("203.0.113.7, 127.0.0.1");
    // max-request-body
    const big = await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(2048) });
    expect(big.status).toBe(413);
    await big.body?.cancel();
    expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);

    for (const [args, env] of [[["healthcheck", "--config", path], {}], [["healthcheck"], { SLUICE_CONFIG: path }]] as const) {
      const check = await run([...args], env);
      expect(check.stderr).toBe("");
      expect(check.code).toBe(0);
    }

    sluice.signal("SIGTERM");
    expect(await sluice.exitCode(30_000)).toBe(0);
    expect(sluice.events("access")).toEqual([]); // access-log = false
    expect(sluice.events("shutdown.complete")).toHaveLength(1);
  }, 120_000);

  test("a file given as an inherited descriptor (--config <(...), /dev/fd/N) is read when serving, by flag or SLUICE_CONFIG", async () => {
    // The binary starts itself over (execve) before it reads its configuration, and Bun marks
    // every inherited descriptor close-on-exec: /dev/fd/N was gone, "no such file", exit 78.
    const text = 'shutdown-delay = 0\nmax-request-body = "10"\n';
    for (const [args, env] of [[["--config", "/dev/fd/63"], {}], [[], { SLUICE_CONFIG: "/proc/self/fd/63" }]] as const) {
      // bash opens fd 63 on a pipe, as its `<(...)` does, then becomes sluice.
      const fromPipe: Target = { name: target.name, command: ["bash", "-c", 'exec "$@" 63< <(printf "%s" "$SLUICE_TEST_TOML")', "bash", ...target.command] };
      const sluice = await startSluice(fromPipe, { args: [...args], env: { ...CLEAN_ENV, ...env, SLUICE_TEST_TOML: text } });
      const big = await fetch(`${sluice.url}/echo`, { method: "POST", body: "x".repeat(100) });
      expect(big.status).toBe(413); // the file's max-request-body
      await big.body?.cancel();
      const app = (await (await fetch(`${sluice.url}/env`)).json()) as Record<string, string>;
      expect(app.SLUICE_TEST_TOML).toBe(text);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode(30_000)).toBe(0);
    }
  }, 120_000);

  test("flags and SLUICE_* variables win over the file when running", async () => {
    const fileHttp = freePort();
    const fileAdmin = freePort();
    const app = freePort();
    const path = writeConfig([
      `http-port = ${fileHttp}`,
      `target-port = ${app}`,
      `admin-listen = "127.0.0.1:${fileAdmin}"`,
      'log-level = "error"',
      "shutdown-delay = 0",
    ]);
    const http = freePort();
    const admin = freePort();
    const sluice = await startSluice(target, {
      args: ["--config", path, "--http-port", String(http), "--log-level", "info"],
      env: { ...CLEAN_ENV, SLUICE_ADMIN_LISTEN: `127.0.0.1:${admin}` },
      ports: { target: app, admin },
    });
    // "ready" is an info record: --log-level info won over the file's error.
    expect(sluice.httpPort).toBe(http);
    const response = await fetch(`${sluice.url}/echo`);
    expect(response.status).toBe(200);
    await response.body?.cancel();
    expect((await fetch(`${sluice.adminUrl}/readyz`)).status).toBe(200);
    expect(await refuses(fileHttp)).toBe(true);
    expect(await refuses(fileAdmin)).toBe(true);

    // healthcheck resolves admin-listen the same way: the variable over the file.
    const check = await run(["healthcheck", "--config", path], { SLUICE_ADMIN_LISTEN: `127.0.0.1:${admin}` });
    expect(check.code).toBe(0);
    const fileOnly = await run(["healthcheck", "--config", path]);
    expect(fileOnly.code).toBe(1);
    expect(fileOnly.stderr).toContain(`127.0.0.1:${fileAdmin}/readyz failed`);

    sluice.signal("SIGTERM");
    expect(await sluice.exitCode(30_000)).toBe(0);
  }, 120_000);
});
