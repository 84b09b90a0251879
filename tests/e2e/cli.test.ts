/** @module The command line end to end: version, help, usage errors, bad values, check, the grace-period refusal. */

import { describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OPTIONS, envName } from "../../src/config.ts";
import { freePort, runSluice, startSluice, TARGETS, tempDir } from "../harness.ts";
import pkg from "../../package.json" with { type: "json" };

/** Variables that would change what these tests see, removed from the inherited environment. */
const CLEAN_ENV = Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""]));

describe.each(TARGETS)("command line ($name)", (target) => {
  const run = (args: string[], env: Record<string, string> = {}) => runSluice(target, args, { ...CLEAN_ENV, ...env });
  const runtime = target.name === "binary" ? "bun" : "deno";

  test("version prints the version, the commit and the runtime", async () => {
    const { code, stdout, stderr } = await run(["version"]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    const match = /^sluice (\S+) \(commit (\S+), (bun|deno) (\d+\.\d+\.\d+\S*)\)\n$/.exec(stdout);
    expect(match).not.toBeNull();
    expect(match![1]).toBe(pkg.version);
    expect(match![2]).toMatch(/^[0-9a-f]{7,}$/);
    expect(match![3]).toBe(runtime);
  }, 30_000);

  test("--help lists every option with its variable and default", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    const lines = stdout.split("\n");
    for (const spec of Object.values(OPTIONS)) {
      const row = lines.find((line) => line.trimStart().startsWith(`--${spec.name} `));
      expect(row, `--${spec.name} in --help`).toBeDefined();
      const columns = row!.trim().split(/\s+/);
      expect(columns).toContain(envName(spec.name));
      const shown = spec.defaultText === undefined ? "(unset)" : spec.defaultText === "" ? '""' : spec.defaultText;
      expect(columns.at(-1), `default of --${spec.name}`).toBe(shown);
    }
    for (const command of ["check", "healthcheck", "version"]) expect(stdout).toContain(`sluice ${command}`);
    expect(stdout).toContain("64 usage error");
  }, 30_000);

  test("an unknown flag is a usage error naming it, and the option it most likely meant", async () => {
    const { code, stdout, stderr } = await run(["--drain-timout", "3s", "--", "true"]);
    expect(code).toBe(64);
    expect(stderr).toBe('sluice: Unknown flag --drain-timout (did you mean --drain-timeout?)\nRun "sluice --help" for usage.\n');
    expect(stdout).toBe("");
    // Another case, underscores, a single dash, a swap of two letters; a misspelt key in the file.
    for (const [flag, meant] of [["--HTTP-PORT", "--http-port"], ["--http_port", "--http-port"], ["-http-port", "--http-port"], ["--stop-tiemout", "--stop-timeout"]]) {
      const typo = await run(["check", flag!, "8080"]);
      expect(typo.code).toBe(64);
      expect(typo.stderr).toStartWith(`sluice: Unknown flag ${flag} (did you mean ${meant}?)\n`);
    }
    const nothingNear = await run(["check", "--bogus", "1"]);
    expect(nothingNear.stderr).toStartWith("sluice: Unknown flag --bogus\n");
    const path = join(tempDir(), "sluice.toml");
    writeFileSync(path, 'SLUICE_HTTP_PORT = 8080\ndrian-timeout = "3s"\n');
    const file = await run(["check", "--config", path]);
    expect(file.code).toBe(78);
    expect(file.stderr).toBe(`sluice: Unknown key "SLUICE_HTTP_PORT" in ${path} line 1 (did you mean http-port?)\n`);
    // --no- of a boolean takes no value; --no- of another option is not a flag.
    const negated = await run(["check", "--no-access-log=true"]);
    expect(negated.code).toBe(64);
    expect(negated.stderr).toStartWith("sluice: --no-access-log takes no value: write --no-access-log, or --access-log=true|false\n");
    const notBoolean = await run(["check", "--no-http-port"]);
    expect(notBoolean.code).toBe(64);
    expect(notBoolean.stderr).toStartWith("sluice: Unknown flag --no-http-port: --http-port is not a boolean, it takes a value (--http-port PORT)\n");
  }, 30_000);

  test("a flag without its value is a usage error", async () => {
    const { code, stderr } = await run(["--drain-timeout"]);
    expect(code).toBe(64);
    expect(stderr).toContain("Missing value for --drain-timeout");
  }, 30_000);

  test("a missing command is a usage error", async () => {
    for (const args of [[], ["--drain-timeout", "3s"], ["--drain-timeout", "3s", "--"]]) {
      const { code, stderr } = await run(args);
      expect(code).toBe(64);
      expect(stderr).toContain("Missing the command to run");
    }
    // `sluice -- "$APP"` with APP unset: it bound the listeners, then failed to spawn "" (exit 78).
    const empty = await run(["--http-port", String(freePort()), "--admin-listen", "off", "--", "", "arg"]);
    expect(empty.code).toBe(64);
    expect(empty.stderr).toBe('sluice: The command to run is empty (an unset variable?): sluice [options] [--] <command> [args...]\nRun "sluice --help" for usage.\n');
    expect(empty.stdout).toBe("");
  }, 60_000);

  test("sluice run -- app (a subcommand sluice does not have) is a usage error saying how to write it", async () => {
    // "run" was spawned as the app with "--" as its first argument, after binding the listeners.
    const { code, stdout, stderr } = await run(["run", "--http-port", String(freePort()), "--admin-listen", "off", "--", "true"]);
    expect(code).toBe(64);
    expect(stderr).toBe('sluice: sluice has no "run" command: write sluice [options] -- <command> [args...] (or put -- before a program named run)\nRun "sluice --help" for usage.\n');
    expect(stdout).toBe("");
  }, 30_000);

  test("a bad value fails at start naming the flag or the variable and the value", async () => {
    const flag = await run(["--drain-timeout", "3x", "--", "true"]);
    expect(flag.code).toBe(78);
    expect(flag.stderr).toContain('Cannot parse --drain-timeout: expected a duration');
    expect(flag.stderr).toContain('current value is "3x"');

    const variable = await run(["--", "true"], { SLUICE_DRAIN_TIMEOUT: "3x" });
    expect(variable.code).toBe(78);
    expect(variable.stderr).toContain("Cannot parse SLUICE_DRAIN_TIMEOUT: expected a duration");
    expect(variable.stderr).toContain('current value is "3x"');

    const port = await run(["--http-port=70000", "--", "true"]);
    expect(port.code).toBe(78);
    expect(port.stderr).toContain('Cannot parse --http-port: expected a port number from 0 to 65535; current value is "70000"');
  }, 60_000);

  test("a duration longer than a timer can wait fails at start instead of firing at once", async () => {
    // 720h overflowed setTimeout: each request's upstream deadline re-armed every 1 ms, spinning and warning.
    const { code, stderr } = await run(["--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--upstream-timeout", "720h", "--", "true"]);
    expect(code).toBe(78);
    expect(stderr).toContain('Cannot parse --upstream-timeout: expected a duration of at most 596h, the longest a timer can wait; current value is "720h"');
    const checked = await run(["check"], { SLUICE_HOLD_TIMEOUT: "720h" });
    expect(checked.code).toBe(78);
    expect(checked.stderr).toContain("Cannot parse SLUICE_HOLD_TIMEOUT");
  }, 30_000);

  test("a duration that rounds to 0 ms fails at start instead of turning the timeout off", async () => {
    const { code, stderr } = await run(["--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--body-timeout", "0.1ms", "--", "true"]);
    expect(code).toBe(78);
    expect(stderr).toContain('Cannot parse --body-timeout: expected 0 or a duration of at least 1ms; current value is "0.1ms"');
  }, 30_000);

  test("a boolean flag followed by a boolean word is a usage error, in check too: the word would be the command", async () => {
    // `sluice check --access-log off` said the configuration was valid, with the log on.
    const checked = await run(["check", "--access-log", "off"]);
    expect(checked.code).toBe(64);
    expect(checked.stderr).toContain("--access-log takes no separate value: write --access-log=off or --no-access-log");
    expect(checked.stdout).toBe("");
    // `--compression yes -- app` ran yes(1) as the app.
    const started = await run(["--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--compression", "yes", "--", "true"]);
    expect(started.code).toBe(64);
    expect(started.stderr).toContain('("yes" would be taken as the app\'s command; put -- before it if it is one)');
  }, 30_000);

  test("an address that cannot be bound names both options it comes from, as given", async () => {
    // It named --http-port alone, for a host that cannot be bound set by SLUICE_HTTP_HOST.
    const port = freePort();
    const { code, stdout } = await run(["--http-port", String(port), "--admin-listen", "off", "--target-port", String(freePort()), "--", "true"], {
      SLUICE_HTTP_HOST: "192.0.2.1", // TEST-NET-1: no interface has it
    });
    expect(code).toBe(78);
    expect(stdout).toContain(`Cannot listen on 192.0.2.1:${port} (SLUICE_HTTP_HOST and --http-port): `);
    const admin = await run(["--http-port", "0", "--target-port", String(freePort()), "--", "true"], { SLUICE_ADMIN_LISTEN: `[2001:db8::1]:${port}` });
    expect(admin.code).toBe(78);
    expect(admin.stdout).toContain(`Cannot listen on [2001:db8::1]:${port} (SLUICE_ADMIN_LISTEN): `);
    // A port taken, given by flag with the host left at its default: it read "(the default of
    // --http-host and --http-port)", as if --http-port had not been given.
    const taken = Bun.listen({ hostname: "0.0.0.0", port, socket: { data() {} } });
    try {
      const busy = await run(["--http-port", String(port), "--admin-listen", "off", "--target-port", String(freePort()), "--", "true"], { SLUICE_HTTP_HOST: "" });
      expect(busy.code).toBe(78);
      expect(busy.stdout).toContain(`Cannot listen on 0.0.0.0:${port} (--http-port and the default of --http-host): `);
    } finally {
      taken.stop(true);
    }
  }, 30_000);

  test("an address that cannot be bound says why in the same words on both runtimes", async () => {
    // Bun said "ENXIO: no such device or address" for a name that does not resolve, and
    // "Failed to start server. Is port N in use?"; Deno "failed to lookup address information"
    // and "Address already in use (os error 98)".
    const port = freePort();
    const reasonFor = async (env: Record<string, string>) => {
      const { code, stdout } = await run(["--target-port", String(freePort()), "--", "true"], { SLUICE_HTTP_PORT: String(port), SLUICE_ADMIN_LISTEN: "off", ...env });
      expect(code).toBe(78);
      const failed = stdout.split("\n").filter((line) => line.includes('"start.failed"')).map((line) => JSON.parse(line) as { error: string });
      return /^Cannot listen on [^ ]+ \([^)]+\): (.*)$/.exec(failed[0]?.error ?? "")?.[1];
    };
    expect(await reasonFor({ SLUICE_HTTP_HOST: "sluice-test.invalid" })).toBe("the host name sluice-test.invalid does not resolve to an address");
    expect(await reasonFor({ SLUICE_HTTP_HOST: "192.0.2.1" })).toBe("no network interface of this machine has the address 192.0.2.1");
    const taken = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      expect(await reasonFor({ SLUICE_HTTP_HOST: "127.0.0.1" })).toBe(`the address is already in use (another process listens on port ${port})`);
    } finally {
      taken.stop(true);
    }
  }, 30_000);

  test("a --ready-path no request can carry fails check and start at once, not after --ready-timeout", async () => {
    // "/ready up" (or a tab inside, from a variable) passed check, then every probe failed for 60 s.
    const checked = await run(["check"], { SLUICE_READY_PATH: "/ready up" });
    expect(checked.code).toBe(78);
    expect(checked.stderr).toContain('Cannot parse SLUICE_READY_PATH: expected a path starting with /, without spaces, control characters or a #fragment; current value is "/ready up"');
    const started = Date.now();
    const { code, stderr } = await run(["--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--ready-timeout", "15s", "--ready-path", "/ready\tup", "--", "sleep", "30"]);
    expect(code).toBe(78);
    expect(stderr).toContain("Cannot parse --ready-path");
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  test("a healthcheck URL that does not parse is a usage error naming it, not \"not ready\"", async () => {
    // These failed every check as "not ready (... Invalid URL)": Docker's unhealthy, for ever.
    for (const url of ["http://127.0.0.1:99999/readyz", "http://[::1/readyz", "http://exa mple/readyz", "http://%zz/"]) {
      const { code, stderr } = await run(["healthcheck", url]);
      expect({ url, code }).toEqual({ url, code: 64 });
      expect(stderr).toContain(`sluice: Invalid healthcheck URL "${url}": expected http://host:port/path`);
    }
  }, 30_000);

  test("a healthcheck that cannot connect, or gets no answer, says so in the same words on both runtimes", async () => {
    // Bun said "The operation timed out.", Deno "The operation was aborted due to timeout"; and
    // both "Cannot connect to upstream", the proxy's words for its app.
    const port = freePort();
    const refused = await run(["healthcheck", `http://127.0.0.1:${port}/readyz`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `sluice healthcheck: not ready (GET http://127.0.0.1:${port}/readyz failed: nothing accepts connections there (is sluice running, with its admin listener on that address?))\n`,
    );
    const silent = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const hung = await run(["healthcheck", `http://127.0.0.1:${port}/readyz`]);
      expect(hung.code).toBe(1);
      expect(hung.stderr).toBe(`sluice healthcheck: not ready (GET http://127.0.0.1:${port}/readyz got no answer within 3s)\n`);
    } finally {
      silent.stop(true);
    }
  }, 30_000);

  test("a size that rounds to 0 bytes, or one or a count too large to be exact, fails naming the value as written", async () => {
    // --max-request-body 0.5 was taken as 0 (no limit), and 400 nines as Infinity, said so in errors.
    const { code, stderr } = await run(["--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--max-request-body", "0.5", "--", "true"]);
    expect(code).toBe(78);
    expect(stderr).toContain('Cannot parse --max-request-body: expected 0 or a size of at least 1 byte; current value is "0.5"');
    const nines = "9".repeat(400);
    const size = await run(["check", "--max-header-size", nines]);
    expect(size.code).toBe(78);
    expect(size.stderr).toContain(`Cannot parse --max-header-size: expected a size of at most 9007199254740991 bytes; current value is "${nines}"`);
    const count = await run(["check"], { SLUICE_MAX_HEADER_COUNT: nines });
    expect(count.code).toBe(78);
    expect(count.stderr).toContain(`Cannot parse SLUICE_MAX_HEADER_COUNT: expected a whole number of at most 9007199254740991; current value is "${nines}"`);
    expect(count.stderr).not.toContain("Infinity");
  }, 30_000);

  test("an IPv6 --target-host in brackets reaches the child; an empty --http-host is refused", async () => {
    // "[::1]" went to the runtimes as a name: every request got 502, and --ready-path never answered.
    const sluice = await startSluice(target, { args: ["--target-host", "[::1]", "--ready-path", "/ready"], env: { APP_HOST: "::1" } });
    try {
      const response = await fetch(`${sluice.url}/slow?ms=1`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("slow 1\n");
    } finally {
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }
    // The binary listened on every interface, Deno failed to listen: both now refuse it up front.
    const { code, stderr } = await run(["--http-host=", "--http-port", "0", "--admin-listen", "off", "--target-port", String(freePort()), "--", "true"]);
    expect(code).toBe(78);
    expect(stderr).toContain('Cannot parse --http-host: expected a host name or an IP address (IPv6 with or without brackets), without a port; current value is ""');
  }, 90_000);

  test("flags win over variables", async () => {
    // The variable alone would fail; the flag hides it.
    const hidden = await run(["check", "--drain-timeout", "1s"], { SLUICE_DRAIN_TIMEOUT: "3x" });
    expect(hidden.code).toBe(0);
    expect(hidden.stdout).toMatch(/drain-timeout +1s\n/);

    const both = await run(["check", "--drain-timeout=2s"], { SLUICE_DRAIN_TIMEOUT: "7s", SLUICE_STOP_TIMEOUT: "3s" });
    expect(both.code).toBe(0);
    expect(both.stdout).toMatch(/drain-timeout +2s\n/);
    expect(both.stdout).toMatch(/stop-timeout +3s\n/);
  }, 60_000);

  test("a SLUICE_* variable that names no option is warned about in check and at start, and ignored", async () => {
    // A misspelt variable left its option at the default without a word.
    const env = { SLUICE_DRAIN_TIMOUT: "30s", SLUICE_UNSET_HERE: "" };
    const checked = await run(["check"], env);
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/drain-timeout +15s\n/);
    expect(checked.stderr).toBe("sluice: warning: SLUICE_DRAIN_TIMOUT is set but names no option of sluice (did you mean SLUICE_DRAIN_TIMEOUT? sluice --help lists them); it is ignored\n");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], env });
    expect(sluice.events("config.unknown-variable").map((r) => r.variable)).toEqual(["SLUICE_DRAIN_TIMOUT"]);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("check prints the stop budget and exits 0", async () => {
    const { code, stdout } = await run(["check", "--shutdown-delay", "2s", "--drain-timeout", "10s", "--stop-timeout", "3s"]);
    expect(code).toBe(0);
    expect(stdout).toContain("Configuration is valid.");
    expect(stdout).toMatch(/shutdown-delay +2s\n/);
    expect(stdout).toMatch(/drain-timeout +10s\n/);
    expect(stdout).toMatch(/stop-timeout +3s\n/);
    expect(stdout).toMatch(/flush-timeout +2s\n/);
    expect(stdout).toMatch(/close-grace +500ms\n/);
    expect(stdout).toMatch(/total +17.5s\n/);

    const fits = await run(["check", "--grace-period", "30s"]);
    expect(fits.code).toBe(0);
    expect(fits.stdout).toMatch(/total +27.5s\n/);
    expect(fits.stdout).toMatch(/grace-period +30s +fits, 2.5s to spare/);
  }, 60_000);

  test("check with a grace period smaller than the budget exits 78 and prints the arithmetic", async () => {
    const { code, stdout, stderr } = await run(["check", "--grace-period", "10s"]);
    expect(code).toBe(78);
    expect(stdout).toMatch(/shutdown-delay +5s\n/);
    expect(stdout).toMatch(/drain-timeout +15s\n/);
    expect(stdout).toMatch(/stop-timeout +5s\n/);
    expect(stdout).toMatch(/flush-timeout +2s\n/);
    expect(stdout).toMatch(/total +27.5s\n/);
    expect(stdout).toMatch(/grace-period +10s +DOES NOT FIT: 17.5s over/);
    expect(stderr).toContain("exceeds --grace-period 10s");
  }, 30_000);

  test("check with a bad value exits 78 naming it", async () => {
    const { code, stderr } = await run(["check"], { SLUICE_STOP_TIMEOUT: "soon" });
    expect(code).toBe(78);
    expect(stderr).toContain('Cannot parse SLUICE_STOP_TIMEOUT: expected a duration such as 250ms, 5s, 2m or plain seconds; current value is "soon"');
  }, 30_000);

  test("a grace period smaller than the budget refuses to start the child", async () => {
    const marker = join(tempDir(), "child-ran");
    const { code, stdout, stderr } = await run(
      ["--grace-period", "10s", "--http-port", "0", "--admin-listen", "off", "--", "sh", "-c", `touch ${marker}`],
    );
    expect(code).toBe(78);
    expect(stderr).toContain("exceeds --grace-period 10s");
    expect(stdout).not.toContain("child.started");
    expect(existsSync(marker)).toBe(false);

    const env = await run(["--http-port", "0", "--admin-listen", "off", "--", "sh", "-c", `touch ${marker}`], {
      SLUICE_GRACE_PERIOD: "20s",
    });
    expect(env.code).toBe(78);
    expect(env.stderr).toContain("exceeds SLUICE_GRACE_PERIOD 20s"); // names where the value came from
    expect(existsSync(marker)).toBe(false);
  }, 30_000);
});
