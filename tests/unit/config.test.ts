/** @module Option values and the command line: parsers, CIDR matching, flags against variables. */

import { describe, expect, test } from "bun:test";
import { parseArgs, UsageError } from "../../src/cli.ts";
import {
  changedOptions,
  childEnvironment,
  ConfigError,
  envName,
  OPTIONS,
  resolveConfig,
  resolveWithSource,
  stopBudget,
  validateConfig,
} from "../../src/config.ts";
import {
  cidrsContain,
  formatDuration,
  parseBoolean,
  parseChoice,
  parseCidrList,
  parseDuration,
  parseHost,
  parseListenAddress,
  parseNonNegativeInteger,
  parsePort,
  parseSize,
} from "../../src/config-values.ts";

describe("durations", () => {
  test.each([
    ["250ms", 250],
    ["5s", 5000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["30", 30_000],
    ["1.5", 1500],
    ["1.5s", 1500],
    ["0", 0],
    ["0ms", 0],
    [" 5s ", 5000],
  ])("%p is %pms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(["3x", "", "-1s", "5 s", "s", "1e3", "5S", "1.s", ".5s", "5sec"])("%p is refused", (text) => {
    expect(() => parseDuration(text)).toThrow(RangeError);
  });

  test("a duration that rounds to 0 is refused: 0 turns some timeouts off", () => {
    expect(parseDuration("0.5ms")).toBe(1);
    for (const text of ["0.4ms", "0.0001s", "0.0001"]) expect(() => parseDuration(text), text).toThrow("expected 0 or a duration of at least 1ms");
    expect(parseDuration("0.0s")).toBe(0);
  });

  test("a duration longer than a timer can wait (2^31-1 ms) is refused", () => {
    expect(parseDuration("596h")).toBe(596 * 3_600_000);
    expect(parseDuration("2147483.647")).toBe(2 ** 31 - 1);
    for (const text of ["597h", "720h", "2147483.648", "99999999999h"]) {
      expect(() => parseDuration(text), text).toThrow("expected a duration of at most 596h, the longest a timer can wait");
    }
  });

  test("formatDuration writes back what a user would type", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(1500)).toBe("1.5s");
    expect(formatDuration(120_000)).toBe("2m");
    expect(parseDuration(formatDuration(27_500))).toBe(27_500);
  });
});

describe("sizes", () => {
  test.each([
    ["0", 0],
    ["1048576", 1_048_576],
    ["512KiB", 524_288],
    ["512kib", 524_288],
    ["10MB", 10_000_000],
    ["10 MB", 10_000_000],
    ["1GiB", 1024 ** 3],
    ["1k", 1024],
    ["1.5KiB", 1536],
    ["7b", 7],
  ])("%p is %p bytes", (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  test.each(["", "-1", "1TB", "KiB", "ten"])("%p is refused", (text) => {
    expect(() => parseSize(text)).toThrow(RangeError);
  });

  test("a size that rounds down to 0 bytes is refused: 0 means no limit, or the cache off", () => {
    for (const text of ["0.5", "0.9b", "0.0001KiB"]) expect(() => parseSize(text), text).toThrow("expected 0 or a size of at least 1 byte");
    expect(parseSize("0.0")).toBe(0);
    expect(parseSize("1.5")).toBe(1);
  });

  test("a size beyond 2^53 bytes is refused rather than rounded (or made Infinity)", () => {
    expect(parseSize("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
    for (const text of ["9007199254740992", "9007199254740993", "10000000GiB", "9".repeat(400)]) {
      expect(() => parseSize(text), text.slice(0, 20)).toThrow("expected a size of at most 9007199254740991 bytes");
    }
  });
});

describe("ports and counts", () => {
  test.each([["0", 0], ["80", 80], ["65535", 65535], [" 8080 ", 8080]])("port %p", (text, port) => {
    expect(parsePort(text)).toBe(port);
  });

  test.each(["65536", "-1", "", "80x", "8.5", "0x50"])("port %p is refused", (text) => {
    expect(() => parsePort(text)).toThrow(RangeError);
  });

  test("non-negative integers", () => {
    expect(parseNonNegativeInteger("0")).toBe(0);
    expect(parseNonNegativeInteger("1000")).toBe(1000);
    for (const bad of ["-1", "1.5", "", "many"]) expect(() => parseNonNegativeInteger(bad)).toThrow(RangeError);
  });

  test("a count beyond 2^53 is refused rather than rounded (or made Infinity)", () => {
    expect(parseNonNegativeInteger("9007199254740991")).toBe(Number.MAX_SAFE_INTEGER);
    for (const text of ["9007199254740993", "99999999999999999999", "9".repeat(400)]) {
      expect(() => parseNonNegativeInteger(text), text.slice(0, 20)).toThrow("expected a whole number of at most 9007199254740991");
    }
  });
});

describe("ready path", () => {
  const readyPath = (text: string) => resolveConfig({ readyPath: { text, from: "--ready-path" } }, {}, ["app"]).readyPath;

  test("a path a request line can carry; spaces around it are dropped, as around other values", () => {
    expect(readyPath("/up")).toBe("/up");
    expect(readyPath("/up?probe=1&x=%20")).toBe("/up?probe=1&x=%20");
    expect(readyPath(" /up\t")).toBe("/up");
  });

  test("one with a space, a control character or a #fragment inside is refused at start, not at every probe", () => {
    // "/up " and "/a b" passed check, then failed every probe until --ready-timeout.
    for (const text of ["/a b", "/up\u0000", "/up\u007f", "/up#top", "/x\ny"]) {
      expect(() => readyPath(text), JSON.stringify(text)).toThrow(
        `Cannot parse --ready-path: expected a path starting with /, without spaces, control characters or a #fragment; current value is "${text}"`,
      );
    }
    expect(() => readyPath("up")).toThrow("expected a path starting with /");
  });
});

describe("hosts", () => {
  test.each([
    ["localhost", "localhost"],
    [" 10.0.0.1 ", "10.0.0.1"],
    ["::1", "::1"],
    ["[::1]", "::1"],
    ["[::]", "::"],
    ["fe80::1%eth0", "fe80::1%eth0"],
  ])("%p is %p", (text, host) => {
    expect(parseHost(text)).toBe(host);
  });

  test.each(["", " ", "[]", "[localhost]", "127.0.0.1:3000", "[::1]:3000", "a b", "::1::2"])("%p is refused", (text) => {
    expect(() => parseHost(text)).toThrow("expected a host name or an IP address (IPv6 with or without brackets), without a port");
  });
});

describe("listen addresses", () => {
  test.each([
    ["127.0.0.1:9000", { hostname: "127.0.0.1", port: 9000 }],
    [":9000", { hostname: "0.0.0.0", port: 9000 }],
    ["[::1]:9000", { hostname: "::1", port: 9000 }],
    ["[::]:0", { hostname: "::", port: 0 }],
    ["localhost:9000", { hostname: "localhost", port: 9000 }],
    ["[fe80::1%eth0]:9000", { hostname: "fe80::1%eth0", port: 9000 }],
  ])("%p", (text, address) => {
    expect(parseListenAddress(text)).toEqual(address);
  });

  test.each(["9000", "127.0.0.1", "::1:9000", "[::1]", "host:99999", "host:", "[::1]9000", "[]:9000", "[x]:9000", "a b:9000"])("%p is refused", (text) => {
    expect(() => parseListenAddress(text)).toThrow(RangeError);
  });

  test("--admin-listen off turns the admin listener off", () => {
    expect(resolveConfig({ adminListen: { text: "off", from: "--admin-listen" } }, {}, []).adminListen).toBeUndefined();
    // A port alone, or `admin-listen = false` in the file: the error says that off is the word.
    for (const text of ["9000", "false"]) {
      expect(() => resolveConfig({ adminListen: { text, from: "--admin-listen" } }, {}, [])).toThrow(
        `Cannot parse --admin-listen: expected host:port, [ipv6]:port, :port or off; current value is "${text}"`,
      );
    }
    expect(() => resolveConfig({ adminListen: { text: "127.0.0.1:99999", from: "--admin-listen" } }, {}, [])).toThrow("expected a port number from 0 to 65535");
  });
});

describe("Kubernetes service links", () => {
  test("a SLUICE_* variable Kubernetes set for a Service (tcp://host:port) says where it comes from", () => {
    // A Service named sluice-http makes SLUICE_HTTP_PORT=tcp://... in every pod of its namespace.
    expect(() => resolveConfig({}, { SLUICE_HTTP_PORT: "tcp://10.0.0.1:8080" }, [])).toThrow(
      'Cannot parse SLUICE_HTTP_PORT: expected a port number from 0 to 65535; current value is "tcp://10.0.0.1:8080" (a Kubernetes service link, from a Service whose name makes this variable: set enableServiceLinks: false in the pod spec)',
    );
    expect(() => resolveConfig({ httpPort: { text: "tcp://10.0.0.1:8080", from: "--http-port" } }, {}, [])).toThrow(/current value is "tcp:\/\/10\.0\.0\.1:8080"$/);
  });
});

describe("booleans and choices", () => {
  test.each(["1", "true", "TRUE", "yes", "on"])("%p is true", (text) => expect(parseBoolean(text)).toBe(true));
  test.each(["0", "false", "no", "off", " Off "])("%p is false", (text) => expect(parseBoolean(text)).toBe(false));
  test.each(["", "maybe", "2"])("%p is refused", (text) => expect(() => parseBoolean(text)).toThrow(RangeError));

  test("choices name every allowed value when refusing", () => {
    const parse = parseChoice(["never", "on-failure", "always"] as const);
    expect(parse(" always ")).toBe("always");
    expect(() => parse("sometimes")).toThrow("expected one of never, on-failure, always");
  });

  test("a refused choice names the one it most likely meant: another case, _ for -, without SIG, or the one it begins", () => {
    const restart = parseChoice(["never", "on-failure", "always"] as const);
    expect(() => restart("on_failure")).toThrow(new RangeError("expected one of never, on-failure, always (did you mean on-failure?)"));
    expect(() => restart("Always")).toThrow("(did you mean always?)");
    expect(() => restart("no")).toThrow(new RangeError("expected one of never, on-failure, always"));
    const level = parseChoice(["trace", "debug", "info", "warning", "error", "fatal"] as const);
    expect(() => level("WARN")).toThrow("(did you mean warning?)");
    const signal = parseChoice(["SIGTERM", "SIGINT", "SIGQUIT"] as const);
    expect(() => signal("TERM")).toThrow("(did you mean SIGTERM?)");
    expect(() => signal("SIGKILL")).toThrow(new RangeError("expected one of SIGTERM, SIGINT, SIGQUIT"));
  });
});

describe("CIDR lists", () => {
  test("addresses and ranges of both families", () => {
    expect(parseCidrList("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8")).toEqual([
      { family: 4, bits: 0x0a000000n, prefix: 8 },
      { family: 4, bits: 0x7f000001n, prefix: 32 },
      { family: 6, bits: 1n, prefix: 128 },
      { family: 6, bits: 0xfdn << 120n, prefix: 8 },
    ]);
    expect(parseCidrList("")).toEqual([]);
    expect(parseCidrList(" , ")).toEqual([]);
  });

  test.each([
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/",
    "10.0.0.0/8/9",
    "10.0.0.0/0x8",
    "10.0.0.0/-1",
    "256.0.0.1",
    "10.0.0",
    "10.0.0.0.1",
    "1::2::3",
    "12345::",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "::1:2:3:4:5:6:7:8",
    "fe80::g",
    "example.com",
    "::ffff:1.2.3",
  ])("%p is refused", (text) => {
    expect(() => parseCidrList(text)).toThrow(RangeError);
  });

  test.each(["010.0.0.0/8", "10.0.0.01", "::ffff:10.00.0.1"])("%p (a leading zero, octal to some tools) is refused, saying so", (text) => {
    expect(() => parseCidrList(text)).toThrow(`"${text}" has an IPv4 octet with a leading zero`);
  });

  test("0 octets are fine", () => {
    expect(parseCidrList("0.0.0.0/0, 10.0.0.0")).toHaveLength(2);
  });

  test("IPv4 matching", () => {
    const nets = parseCidrList("10.0.0.0/8, 192.168.1.7");
    expect(cidrsContain(nets, "10.0.0.1")).toBe(true);
    expect(cidrsContain(nets, "10.255.255.255")).toBe(true);
    expect(cidrsContain(nets, "11.0.0.0")).toBe(false);
    expect(cidrsContain(nets, "9.255.255.255")).toBe(false);
    expect(cidrsContain(nets, "192.168.1.7")).toBe(true);
    expect(cidrsContain(nets, "192.168.1.8")).toBe(false);
    expect(cidrsContain(nets, "")).toBe(false);
    expect(cidrsContain(nets, "not an address")).toBe(false);
    expect(cidrsContain([], "10.0.0.1")).toBe(false);
  });

  test("host bits set in a network are ignored; /0 matches its whole family", () => {
    expect(cidrsContain(parseCidrList("10.1.2.3/8"), "10.200.0.1")).toBe(true);
    const all = parseCidrList("0.0.0.0/0, ::/0");
    expect(cidrsContain(all, "203.0.113.9")).toBe(true);
    expect(cidrsContain(all, "2001:db8::1")).toBe(true);
    expect(cidrsContain(parseCidrList("0.0.0.0/0"), "2001:db8::1")).toBe(false);
  });

  test("IPv6 matching, compressed or not, any case", () => {
    const nets = parseCidrList("fd00::/8, ::1, 2001:db8:0:0:1::/80");
    expect(cidrsContain(nets, "fd12:3456::1")).toBe(true);
    expect(cidrsContain(nets, "FD00::ABCD")).toBe(true);
    expect(cidrsContain(nets, "fe00::1")).toBe(false);
    expect(cidrsContain(nets, "0:0:0:0:0:0:0:1")).toBe(true);
    expect(cidrsContain(nets, "::2")).toBe(false);
    expect(cidrsContain(nets, "2001:db8::1:0:ffff:1")).toBe(true);
    expect(cidrsContain(nets, "2001:db8::2:0:0:1")).toBe(false);
    expect(cidrsContain(nets, "fe80::1%eth0")).toBe(false);
    expect(cidrsContain(parseCidrList("fe80::/10"), "fe80::1%eth0")).toBe(true);
  });

  test("IPv4-mapped IPv6 addresses count as IPv4, in dotted or hex form", () => {
    const nets = parseCidrList("10.0.0.0/8");
    expect(cidrsContain(nets, "::ffff:10.1.2.3")).toBe(true);
    expect(cidrsContain(nets, "::ffff:a01:203")).toBe(true);
    expect(cidrsContain(nets, "0:0:0:0:0:ffff:10.1.2.3")).toBe(true);
    expect(cidrsContain(nets, "::ffff:11.1.2.3")).toBe(false);
    // Only ::ffff:0:0/96 is IPv4; an IPv4-compatible or NAT64 address is not mapped.
    expect(cidrsContain(nets, "::10.1.2.3")).toBe(false);
    expect(cidrsContain(nets, "64:ff9b::10.1.2.3")).toBe(false);
    // An IPv4 address never matches an IPv6 network that is not a mapped one.
    expect(cidrsContain(parseCidrList("::/0"), "10.1.2.3")).toBe(false);
  });

  test("a mapped network is the IPv4 network it maps", () => {
    expect(parseCidrList("::ffff:10.0.0.0/104")).toEqual([{ family: 4, bits: 0x0a000000n, prefix: 8 }]);
    expect(cidrsContain(parseCidrList("::ffff:10.0.0.0/104"), "10.9.9.9")).toBe(true);
    expect(cidrsContain(parseCidrList("::ffff:127.0.0.1"), "127.0.0.1")).toBe(true);
  });
});

describe("parseArgs", () => {
  test("options end at the first argument that is not a flag", () => {
    const { flags, command } = parseArgs(["--drain-timeout", "3s", "bin/rails", "server", "--port", "3000"]);
    expect(flags).toEqual({ drainTimeout: { text: "3s", from: "--drain-timeout" } });
    expect(command).toEqual(["bin/rails", "server", "--port", "3000"]);
  });

  test("-- ends the options, even before something that looks like a flag", () => {
    expect(parseArgs(["--restart", "always", "--", "--weird-app", "-x"])).toEqual({
      flags: { restart: { text: "always", from: "--restart" } },
      command: ["--weird-app", "-x"],
    });
    expect(parseArgs(["--"]).command).toEqual([]);
    expect(parseArgs(["--", "--"]).command).toEqual(["--"]);
  });

  test("--name=value, including values with = and empty values", () => {
    expect(parseArgs(["--ready-path=/up?x=1", "app"]).flags).toEqual({
      readyPath: { text: "/up?x=1", from: "--ready-path" },
    });
    expect(parseArgs(["--trusted-proxies=", "app"]).flags).toEqual({
      trustedProxies: { text: "", from: "--trusted-proxies" },
    });
  });

  test("a value may look like a single-dash option", () => {
    expect(parseArgs(["--http-host", "-", "app"]).flags.httpHost?.text).toBe("-");
  });

  test("booleans: --name, --no-name, --name=false", () => {
    expect(parseArgs(["--access-log", "app"]).flags.accessLog).toEqual({ text: "true", from: "--access-log" });
    expect(parseArgs(["--no-access-log", "app"]).flags.accessLog).toEqual({ text: "false", from: "--access-log" });
    expect(parseArgs(["--access-log=false", "app"]).flags.accessLog).toEqual({ text: "false", from: "--access-log" });
    // A bare boolean does not take the next argument: it is the command, but for true and
    // false, which are refused (a value meant for the flag would run as the app).
    expect(parseArgs(["--access-log", "app"]).command).toEqual(["app"]);
    expect(() => parseArgs(["--access-log", "false", "--", "app"])).toThrow("--access-log takes no separate value: write --access-log=false or --no-access-log");
    expect(() => parseArgs(["--compression", "true", "app"])).toThrow("--compression takes no separate value: write --compression=true");
    expect(parseArgs(["--access-log", "--", "false"]).command).toEqual(["false"]);
  });

  test("every spelling of a boolean after a bare boolean flag is refused, not run as the command", () => {
    // `--compression yes -- app` ran yes(1); `sluice check --access-log off` said valid, the log on.
    expect(() => parseArgs(["--compression", "yes", "--", "app"])).toThrow(
      '--compression takes no separate value: write --compression=yes ("yes" would be taken as the app\'s command; put -- before it if it is one)',
    );
    for (const word of ["off", "no", "0", "OFF", "False"]) {
      expect(() => parseArgs(["--access-log", word, "app"]), word).toThrow(`write --access-log=${word} or --no-access-log`);
    }
    for (const word of ["on", "1", "YES", "True"]) expect(() => parseArgs(["--x-sendfile", word]), word).toThrow(`write --x-sendfile=${word} (`);
    expect(parseArgs(["--access-log", "--", "yes"]).command).toEqual(["yes"]);
    expect(parseArgs(["--access-log", "yesterday"]).command).toEqual(["yesterday"]);
  });

  test("--no- works only for booleans and takes no value", () => {
    expect(() => parseArgs(["--no-drain-timeout", "app"])).toThrow("Unknown flag --no-drain-timeout: --drain-timeout is not a boolean, it takes a value (--drain-timeout DURATION)");
    expect(() => parseArgs(["--no-access-log=true", "app"])).toThrow("--no-access-log takes no value: write --no-access-log, or --access-log=true|false");
    expect(() => parseArgs(["--no-such-thing", "app"])).toThrow("Unknown flag --no-such-thing");
  });

  test("unknown flags are usage errors naming the flag", () => {
    expect(() => parseArgs(["--drain-timout", "3s", "app"])).toThrow(new UsageError("Unknown flag --drain-timout (did you mean --drain-timeout?)"));
    expect(() => parseArgs(["--bogus=1", "app"])).toThrow("Unknown flag --bogus");
    expect(() => parseArgs(["-v", "app"])).toThrow("Unknown flag -v");
  });

  test("a missing value is a usage error, also when the next argument is a flag or --", () => {
    expect(() => parseArgs(["--drain-timeout"])).toThrow(new UsageError("Missing value for --drain-timeout"));
    expect(() => parseArgs(["--drain-timeout", "--stop-timeout", "1s", "app"])).toThrow("Missing value for --drain-timeout");
    expect(() => parseArgs(["--drain-timeout", "--", "app"])).toThrow("Missing value for --drain-timeout");
  });

  test("the last of a repeated flag wins", () => {
    expect(parseArgs(["--stop-timeout", "1s", "--stop-timeout=2s", "app"]).flags.stopTimeout?.text).toBe("2s");
  });
});

describe("resolveConfig", () => {
  test("defaults", () => {
    const config = resolveConfig({}, {}, ["app"]);
    expect(config).toMatchObject({
      httpPort: 8080,
      targetPort: 3000,
      adminListen: { hostname: "127.0.0.1", port: 9000 },
      shutdownDelay: 5000,
      drainTimeout: 15_000,
      stopTimeout: 5000,
      stopSignal: "SIGTERM",
      restart: "never",
      accessLog: true,
      trustedProxies: [],
      command: ["app"],
    });
    expect(config.readyPath).toBeUndefined();
    expect(config.gracePeriod).toBeUndefined();
  });

  test("every option has a default that parses, or none", () => {
    for (const spec of Object.values(OPTIONS)) {
      if (spec.defaultText !== undefined) expect(() => (spec.parse as (t: string) => unknown)(spec.defaultText!)).not.toThrow();
    }
  });

  test("variables override defaults, flags override variables, empty variables count as unset", () => {
    const env = { SLUICE_DRAIN_TIMEOUT: "7s", SLUICE_STOP_TIMEOUT: "", SLUICE_NO_ACCESS_LOG: "1", SLUICE_ACCESS_LOG: "off" };
    const config = resolveConfig({ drainTimeout: { text: "1s", from: "--drain-timeout" } }, env, []);
    expect(config.drainTimeout).toBe(1000);
    expect(config.stopTimeout).toBe(5000);
    expect(config.accessLog).toBe(false);
    expect(resolveConfig({}, env, []).drainTimeout).toBe(7000);
  });

  test("a bad value names the flag or the variable and the value", () => {
    expect(() => resolveConfig({ drainTimeout: { text: "3x", from: "--drain-timeout" } }, {}, [])).toThrow(
      new ConfigError(
        'Cannot parse --drain-timeout: expected a duration such as 250ms, 5s, 2m or plain seconds; current value is "3x"',
      ),
    );
    expect(() => resolveConfig({}, { SLUICE_DRAIN_TIMEOUT: "3x" }, [])).toThrow(
      'Cannot parse SLUICE_DRAIN_TIMEOUT: expected a duration such as 250ms, 5s, 2m or plain seconds; current value is "3x"',
    );
    expect(() => resolveConfig({}, { SLUICE_TRUSTED_PROXIES: "10.0.0.0/40" }, [])).toThrow(/SLUICE_TRUSTED_PROXIES.*10\.0\.0\.0\/40/);
  });

  test("a flag hides a bad variable", () => {
    expect(resolveConfig({ drainTimeout: { text: "2s", from: "--drain-timeout" } }, { SLUICE_DRAIN_TIMEOUT: "3x" }, []).drainTimeout)
      .toBe(2000);
  });

  test("resolveWithSource reads one option and ignores bad unrelated ones", () => {
    const env = { SLUICE_ADMIN_LISTEN: "127.0.0.1:9100", SLUICE_DRAIN_TIMEOUT: "3x" };
    expect(resolveWithSource("adminListen", {}, env).value).toEqual({ hostname: "127.0.0.1", port: 9100 });
    expect(resolveWithSource("gracePeriod", {}, env).value).toBeUndefined();
    expect(() => resolveWithSource("drainTimeout", {}, env)).toThrow(ConfigError);
  });

  test("variable names", () => {
    expect(envName("drain-timeout")).toBe("SLUICE_DRAIN_TIMEOUT");
    expect(envName("max-held-requests")).toBe("SLUICE_MAX_HELD_REQUESTS");
  });
});

describe("changedOptions", () => {
  test("compares CIDR lists (bigint addresses) and names what changed", () => {
    const proxies = (text: string) => resolveConfig({ trustedProxies: { text, from: "--trusted-proxies" } }, {}, ["app"]);
    expect(changedOptions(proxies("10.0.0.0/8"), proxies("10.0.0.0/8, ::1"))).toEqual(["trustedProxies"]);
    expect(changedOptions(proxies("10.0.0.0/8"), proxies(" 10.0.0.0/8 "))).toEqual([]);
    expect(changedOptions(proxies(""), proxies("127.0.0.1"))).toEqual(["trustedProxies"]);
  });
});

describe("validateConfig", () => {
  const config = (flags: Record<string, string>) =>
    resolveConfig(
      Object.fromEntries(Object.entries(flags).map(([key, text]) => [key, { text, from: `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` }])),
      {},
      ["app"],
    );

  test("the stop budget adds every phase", () => {
    expect(stopBudget(config({}))).toEqual({
      phases: [["shutdown-delay", 5000], ["drain-timeout", 15_000], ["close-grace", 500], ["stop-timeout", 5000], ["flush-timeout", 2000]],
      totalMs: 27_500,
    });
  });

  test("a budget over the grace period is refused; one that fits exactly is not", () => {
    expect(() => validateConfig(config({ gracePeriod: "10s" }))).toThrow(/The stop budget of 27.5s .* exceeds --grace-period 10s/);
    expect(() => validateConfig(config({ gracePeriod: "27.5s" }))).not.toThrow();
    // The message names where the grace period came from.
    expect(() => validateConfig(resolveConfig({}, { SLUICE_GRACE_PERIOD: "10s" }, ["app"]))).toThrow(/exceeds SLUICE_GRACE_PERIOD 10s/);
    expect(() => validateConfig(config({}))).not.toThrow();
  });

  test("ports that collide, named where each came from", () => {
    expect(() => validateConfig(config({ httpPort: "3000" }))).toThrow("--http-port and the default of --target-port are both 3000");
    expect(() => validateConfig(config({ targetPort: "0" }))).toThrow('Cannot use --target-port: the child needs a known port; current value is "0"');
    // --http-port 0 picks a free port: the fault is --target-port's alone.
    expect(() => validateConfig(config({ httpPort: "0", targetPort: "0" }))).toThrow(
      new ConfigError('Cannot use --target-port: the child needs a known port; current value is "0"'),
    );
    expect(() => validateConfig(config({ httpPort: "9000" }))).toThrow("the default of --admin-listen and --http-port both use port 9000");
    expect(() => validateConfig(config({ httpPort: "9000", adminListen: "off" }))).not.toThrow();
    // sluice's own admin listener on the child's port read as "another process already listens there".
    expect(() => validateConfig(config({ targetPort: "9000" }))).toThrow(
      "the default of --admin-listen and --target-port both use port 9000: the child needs a port of its own",
    );
    // From a file, its lines (the flags named were never passed).
    const file = { adminListen: { text: "127.0.0.1:9001", from: "/etc/sluice.toml line 2 (admin-listen)" }, httpPort: { text: "9001", from: "/etc/sluice.toml line 1 (http-port)" } };
    expect(() => validateConfig(resolveConfig({}, {}, ["app"], { file }))).toThrow(
      "/etc/sluice.toml line 2 (admin-listen) and /etc/sluice.toml line 1 (http-port) both use port 9001",
    );
    expect(() => validateConfig(resolveConfig({}, { SLUICE_TARGET_PORT: "8080" }, ["app"]))).toThrow(
      "the default of --http-port and SLUICE_TARGET_PORT are both 8080",
    );
    expect(() => validateConfig(config({ targetPort: "9000", adminListen: "off" }))).not.toThrow();
  });
});

describe("childEnvironment", () => {
  test("sets PORT and removes what belongs to sluice alone", () => {
    const env = childEnvironment({
      PATH: "/bin",
      PORT: "1",
      NOTIFY_SOCKET: "/run/notify",
      WATCHDOG_USEC: "1000",
      WATCHDOG_PID: "1",
      LISTEN_FDS: "1",
      LISTEN_PID: "1",
      LISTEN_FDNAMES: "http",
      LISTEN_FDS_EXTRA: "kept",
      UNSET: undefined,
    }, 3000);
    expect(env).toEqual({ PATH: "/bin", PORT: "3000", LISTEN_FDS_EXTRA: "kept" });
  });
});

describe("thruster's variables", () => {
  const resolve = (env: Record<string, string>, flags: Record<string, string> = {}) =>
    resolveConfig(Object.fromEntries(Object.entries(flags).map(([key, text]) => [key, { text, from: `--${key}` }])), env, ["app"]);

  test("read as fallbacks, THRUSTER_ first, below sluice's own flags and variables", () => {
    const config = resolve({ TARGET_PORT: "4000", HTTP_PORT: "81", MAX_REQUEST_BODY: "1048576", LOG_REQUESTS: "false", HTTP_DRAIN_TIMEOUT: "20", DEBUG: "1" });
    expect(config).toMatchObject({ targetPort: 4000, httpPort: 81, maxRequestBody: 1_048_576, accessLog: false, drainTimeout: 20_000, logLevel: "debug" });
    expect(resolve({ HTTP_PORT: "81", THRUSTER_HTTP_PORT: "82" }).httpPort).toBe(82);
    expect(resolve({ THRUSTER_HTTP_PORT: "82", SLUICE_HTTP_PORT: "83" }).httpPort).toBe(83);
    expect(resolve({ SLUICE_HTTP_PORT: "83" }, { httpPort: "84" }).httpPort).toBe(84);
    expect(resolve({}).httpPort).toBe(8080);
  });

  test("FORWARD_HEADERS trusts every peer, or none", () => {
    expect(resolve({ FORWARD_HEADERS: "true" }).trustedProxies).toHaveLength(2);
    expect(resolve({ FORWARD_HEADERS: "false" }).trustedProxies).toEqual([]);
  });

  test("booleans read as Go's strconv.ParseBool, as thruster reads them; DEBUG=false is thruster's info level", () => {
    // Every spelling ParseBool accepts, prefixed or not, takes effect as thruster gives it.
    for (const [text, value] of [["t", true], ["T", true], ["TRUE", true], ["True", true], ["f", false], ["F", false], ["FALSE", false], ["False", false], ["0", false]] as const) {
      expect(resolve({ LOG_REQUESTS: text }).accessLog).toBe(value);
      expect(resolve({ THRUSTER_GZIP_COMPRESSION_ENABLED: text }).compression).toBe(value);
      expect(resolve({ THRUSTER_X_SENDFILE_ENABLED: text }).xSendfile).toBe(value);
      expect(resolve({ GZIP_COMPRESSION_DISABLE_ON_AUTH: text }).compressionDisableOnAuth).toBe(value);
    }
    for (const text of ["false", "0", "f", "FALSE"]) {
      expect(resolve({ THRUSTER_DEBUG: text }).logLevel).toBe("info");
      expect(resolve({ DEBUG: text }).logLevel).toBe("info");
    }
    expect(resolve({ THRUSTER_DEBUG: "T" }).logLevel).toBe("debug");
    // What ParseBool refuses, thruster ignores: unprefixed it is ignored here too (it may be the app's).
    expect(resolve({ LOG_REQUESTS: "off" }).accessLog).toBe(true);
    expect(() => resolve({ THRUSTER_LOG_REQUESTS: "yes" })).toThrow(/Cannot parse THRUSTER_LOG_REQUESTS: .*"yes"/);
  });

  test("numbers read as Go's strconv.Atoi, as thruster reads them: a sign, no unit", () => {
    // CACHE_SIZE=512MB (the app's own, say) gave sluice a 512 MB cache; thruster ignores it.
    expect(resolve({ CACHE_SIZE: "512MB", MAX_REQUEST_BODY: "10MB", HTTP_IDLE_TIMEOUT: "30s", HTTP_DRAIN_TIMEOUT: "1.5", MAX_CACHE_ITEM_SIZE: "2k" })).toMatchObject({
      cacheSize: 64 * 1024 ** 2,
      maxRequestBody: 0,
      idleTimeout: 60_000,
      drainTimeout: 15_000,
      maxCacheItemSize: 1024 ** 2,
    });
    // Atoi takes a plus sign (thruster listened on 81), and leading zeros.
    expect(resolve({ HTTP_PORT: "+81", TARGET_PORT: "04000", HTTP_DRAIN_TIMEOUT: "+20" })).toMatchObject({ httpPort: 81, targetPort: 4000, drainTimeout: 20_000 });
    expect(() => resolve({ THRUSTER_CACHE_SIZE: "512MB" })).toThrow(
      `Cannot parse THRUSTER_CACHE_SIZE: expected a whole number as thruster reads it (Go's Atoi), without a unit; current value is "512MB"`,
    );
    expect(() => resolve({ THRUSTER_HTTP_IDLE_TIMEOUT: "-5" })).toThrow(/Cannot parse THRUSTER_HTTP_IDLE_TIMEOUT: .*"-5"/);
  });

  test("an unprefixed value thruster could not read is ignored (it may be the app's); a THRUSTER_ one is an error naming it", () => {
    expect(resolve({ DEBUG: "express:*", HTTP_PORT: "http" }).logLevel).toBe("info");
    expect(resolve({ HTTP_PORT: "http" }).httpPort).toBe(8080);
    expect(() => resolve({ THRUSTER_HTTP_PORT: "http" })).toThrow(/Cannot parse THRUSTER_HTTP_PORT: .*"http"/);
  });
});
