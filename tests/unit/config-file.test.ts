/** @module The --config file: TOML values as option text, precedence, errors naming file, line and key. */

import { describe, expect, test } from "bun:test";
import { parse } from "smol-toml";
import { decodeConfigFile, loadConfigFile, topLevelKeyLines, withSecretsMasked } from "../../src/config-file.ts";
import { ConfigError, resolveConfig } from "../../src/config.ts";
import { TRACING_VARIABLES } from "../../src/telemetry/tracing-config.ts";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const PATH = "/etc/sluice.toml";

/** The config a file gives, with no flags and no variables. */
function fromFile(text: string) {
  return resolveConfig({}, {}, ["app"], { file: loadConfigFile(PATH, text).options });
}

/** The ConfigError message loading (and resolving) `text` throws. */
function errorOf(text: string): string {
  try {
    fromFile(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("values", () => {
  test("strings, numbers, booleans and arrays become the option's text, named by file, line and key", () => {
    const sources = loadConfigFile(PATH, [
      "# sluice",
      "http-port = 8081",
      'drain-timeout = "7s"',
      "stop-timeout = 1.5",
      "access-log = false",
      'trusted-proxies = ["10.0.0.0/8", "127.0.0.1"]',
      "",
    ].join("\n")).options;
    expect(sources).toEqual({
      httpPort: { text: "8081", from: `${PATH} line 2 (http-port)` },
      drainTimeout: { text: "7s", from: `${PATH} line 3 (drain-timeout)` },
      stopTimeout: { text: "1.5", from: `${PATH} line 4 (stop-timeout)` },
      accessLog: { text: "false", from: `${PATH} line 5 (access-log)` },
      trustedProxies: { text: "10.0.0.0/8,127.0.0.1", from: `${PATH} line 6 (trusted-proxies)` },
    });
  });

  test("they go through the options' own parsers", () => {
    const config = fromFile([
      "http-port = 8081",
      "target-port = 3001",
      'admin-listen = "off"',
      'drain-timeout = "7s"',
      "stop-timeout = 3",
      "shutdown-delay = 0.25",
      "access-log = false",
      'trusted-proxies = ["10.0.0.0/8", "::1"]',
      'max-request-body = "10MB"',
      "max-held-requests = 5",
      'restart = "on-failure"',
      'log-level = "debug"',
      'ready-path = "/up"',
    ].join("\n"));
    expect(config).toMatchObject({
      httpPort: 8081,
      targetPort: 3001,
      drainTimeout: 7000,
      stopTimeout: 3000,
      shutdownDelay: 250,
      accessLog: false,
      trustedProxies: [{ family: 4, bits: 0x0a000000n, prefix: 8 }, { family: 6, bits: 1n, prefix: 128 }],
      maxRequestBody: 10_000_000,
      maxHeldRequests: 5,
      restart: "on-failure",
      logLevel: "debug",
      readyPath: "/up",
      command: ["app"],
    });
    expect(config.adminListen).toBeUndefined();
    expect(config.config).toBeUndefined();
  });

  test("a list may also be one string; an empty array is an empty list", () => {
    expect(fromFile('trusted-proxies = "10.0.0.0/8, 127.0.0.1"').trustedProxies).toHaveLength(2);
    expect(fromFile("trusted-proxies = []").trustedProxies).toEqual([]);
  });

  test("an array only for a list, and no item holding a comma: one was split, or several joined into one path", () => {
    // x-sendfile-dirs = ["/srv/a,b"] allowed /srv/a and b; public-dir = ["pub", "lic"] served the directory "pub,lic".
    expect(errorOf('\nx-sendfile-dirs = ["/srv/a,b"]')).toBe(
      `Cannot parse ${PATH} line 2 (x-sendfile-dirs): item 1 holds a comma, which would split it in two: give each value as an item of its own; current value is "/srv/a,b"`,
    );
    expect(errorOf('trusted-proxies = ["127.0.0.1", "10.0.0.0/8, ::1"]')).toContain('line 1 (trusted-proxies): item 2 holds a comma');
    expect(errorOf('public-dir = ["pub", "lic"]')).toBe(
      `Cannot parse ${PATH} line 1 (public-dir): expected one value, not an array (only trusted-proxies and x-sendfile-dirs take a list); current value is an array of 2 items`,
    );
    expect(errorOf('drain-timeout = ["5s"]')).toEndWith("current value is an array of 1 item");
    expect(fromFile('x-sendfile-dirs = ["/srv/a", "/srv/b"]').xSendfileDirs).toEqual(["/srv/a", "/srv/b"]);
    // OTEL_* keys are lists of key=value pairs joined with commas, as their variables are.
    expect(loadConfigFile(PATH, 'OTEL_RESOURCE_ATTRIBUTES = ["a=1", "b=2"]').otel).toEqual({
      OTEL_RESOURCE_ATTRIBUTES: { text: "a=1,b=2", from: `${PATH} line 1 (OTEL_RESOURCE_ATTRIBUTES)` },
    });
  });

  test("a bad OTEL_* key is named by the file's line, unless the environment's own variable is what failed", () => {
    // It was named as a variable ("Cannot parse OTEL_EXPORTER_OTLP_ENDPOINT"), which nobody had set.
    const file = loadConfigFile(PATH, 'drain-timeout = "5s"\nOTEL_EXPORTER_OTLP_ENDPOINT = "not a url"\nOTEL_BSP_MAX_QUEUE_SIZE = 10\n');
    const resolve = (env: Record<string, string>) => () => resolveConfig({}, env, ["app"], { file: file.options, otel: file.otel });
    expect(resolve({})).toThrow(
      `Cannot parse ${PATH} line 2 (OTEL_EXPORTER_OTLP_ENDPOINT): expected an http:// or https:// URL; current value is "not a url"`,
    );
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "nor this" })).toThrow('Cannot parse OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL; current value is "nor this"');
    // An empty variable counts as unset: the file's value is the one at fault.
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "" })).toThrow(`Cannot parse ${PATH} line 2 (OTEL_EXPORTER_OTLP_ENDPOINT)`);
    expect(resolve({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "20" })).toThrow(
      'Cannot use OTEL_BSP_MAX_EXPORT_BATCH_SIZE 20: it must not exceed the queue size (OTEL_BSP_MAX_QUEUE_SIZE, 10); current value is "20"',
    );
    const headers = loadConfigFile(PATH, 'OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"\nOTEL_EXPORTER_OTLP_HEADERS = "authorization=%zz"\n');
    expect(() => resolveConfig({}, {}, ["app"], { file: headers.options, otel: headers.otel })).toThrow(
      `Cannot parse ${PATH} line 2 (OTEL_EXPORTER_OTLP_HEADERS): entry 1 ("authorization") has a malformed %-escape`,
    );
  });

  test("an OTEL_* key sluice does not read is unknown: a typo left tracing silently off", () => {
    expect(errorOf('\nOTEL_EXPORTER_OTLP_ENDPIONT = "http://127.0.0.1:4318"')).toStartWith(
      `Unknown key "OTEL_EXPORTER_OTLP_ENDPIONT" in ${PATH} line 2 (the OTEL_* keys sluice reads: OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT,`,
    );
    expect(errorOf('OTEL_PROPAGATORS = "b3"')).toStartWith(`Unknown key "OTEL_PROPAGATORS" in ${PATH} line 1 (the OTEL_* keys`);
    // The list is every variable the tracing settings read.
    const source = readFileSync(join(import.meta.dir, "../../src/telemetry/tracing-config.ts"), "utf8");
    const read = new Set(source.match(/"OTEL_[A-Z_]+"/g)!.map((name) => JSON.parse(name) as string));
    expect([...read].sort()).toEqual([...TRACING_VARIABLES].sort());
    for (const name of TRACING_VARIABLES) expect(Object.keys(loadConfigFile(PATH, `${name} = "x"`).otel)).toEqual([name]);
  });

  test("an OTEL_* variable of only spaces, unset for tracing, does not hide the file's key", () => {
    // OTEL_EXPORTER_OTLP_ENDPOINT=" " hid the file's endpoint, then read as unset: tracing was silently off.
    const file = loadConfigFile(PATH, 'OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"\n');
    for (const value of ["", " ", "\t"]) {
      const config = resolveConfig({}, { OTEL_EXPORTER_OTLP_ENDPOINT: value }, ["app"], { file: file.options, otel: file.otel });
      expect(config.tracing.endpoint, JSON.stringify(value)).toBe("http://127.0.0.1:4318/v1/traces");
    }
  });

  test("quoted keys, spaces and comments are fine; an empty file sets nothing", () => {
    expect(loadConfigFile(PATH, `  "drain-timeout"  =  "2s"  # two seconds\n'stop-timeout'="1s"`).options).toEqual({
      drainTimeout: { text: "2s", from: `${PATH} line 1 (drain-timeout)` },
      stopTimeout: { text: "1s", from: `${PATH} line 2 (stop-timeout)` },
    });
    expect(loadConfigFile(PATH, "").options).toEqual({});
    expect(loadConfigFile(PATH, "# nothing here\n\n").options).toEqual({});
  });
});

describe("precedence: flags > variables > file > defaults", () => {
  const file = loadConfigFile(PATH, 'drain-timeout = "7s"\nstop-timeout = "9s"\nshutdown-delay = "1s"\n').options;

  test("each layer wins over the ones below it", () => {
    const config = resolveConfig(
      { drainTimeout: { text: "1s", from: "--drain-timeout" } },
      { SLUICE_DRAIN_TIMEOUT: "2s", SLUICE_STOP_TIMEOUT: "3s" },
      [],
      { file },
    );
    expect(config.drainTimeout).toBe(1000); // flag over variable and file
    expect(config.stopTimeout).toBe(3000); // variable over file
    expect(config.shutdownDelay).toBe(1000); // file over default
    expect(config.flushTimeout).toBe(2000); // default
  });

  test("an empty variable counts as unset: the file's value holds", () => {
    expect(resolveConfig({}, { SLUICE_STOP_TIMEOUT: "" }, [], { file }).stopTimeout).toBe(9000);
  });

  test("a flag or a variable hides a bad value in the file", () => {
    const bad = loadConfigFile(PATH, 'drain-timeout = "3x"').options;
    expect(resolveConfig({ drainTimeout: { text: "1s", from: "--drain-timeout" } }, {}, [], { file: bad }).drainTimeout).toBe(1000);
    expect(resolveConfig({}, { SLUICE_DRAIN_TIMEOUT: "2s" }, [], { file: bad }).drainTimeout).toBe(2000);
  });
});

describe("errors name the file, the line and the key", () => {
  test("a bad value, with the parser's reason and the value", () => {
    expect(errorOf('http-port = 8080\n\ndrain-timeout = "3x"\n')).toBe(
      'Cannot parse /etc/sluice.toml line 3 (drain-timeout): expected a duration such as 250ms, 5s, 2m or plain seconds; current value is "3x"',
    );
    expect(errorOf("http-port = 70000")).toBe(
      'Cannot parse /etc/sluice.toml line 1 (http-port): expected a port number from 0 to 65535; current value is "70000"',
    );
    expect(errorOf('\ntrusted-proxies = [\n  "10.0.0.0/8",\n  "10.0.0.0/40",\n]')).toBe(
      'Cannot parse /etc/sluice.toml line 2 (trusted-proxies): "10.0.0.0/40" has a prefix length outside 0-32; current value is "10.0.0.0/8,10.0.0.0/40"',
    );
    expect(errorOf("access-log = 1.5")).toContain("line 1 (access-log): expected true or false");
    expect(errorOf("drain-timeout = -1")).toContain('line 1 (drain-timeout): expected a duration');
  });

  test("an unknown key", () => {
    expect(errorOf('http-port = 8080\n# drain it\ndrian-timeout = "3s"\n')).toBe(
      'Unknown key "drian-timeout" in /etc/sluice.toml line 3 (did you mean drain-timeout?)',
    );
    expect(errorOf('"http port" = 1')).toBe('Unknown key "http port" in /etc/sluice.toml line 1 (did you mean http-port?)');
    expect(errorOf("HTTP_PORT = 1")).toBe('Unknown key "HTTP_PORT" in /etc/sluice.toml line 1 (did you mean http-port?)');
    expect(errorOf("bogus = 1")).toBe('Unknown key "bogus" in /etc/sluice.toml line 1');
  });

  test("invalid TOML, with its line and column", () => {
    const message = errorOf('http-port = 8080\ndrain-timeout = "3s\n');
    expect(message).toStartWith("Invalid TOML in /etc/sluice.toml line 2, column 20: ");
    expect(message).toContain('2:  drain-timeout = "3s'); // the lines around it follow
    expect(errorOf("http-port = 8080\ndrain-timeout = 15s\n")).toStartWith(
      'Invalid TOML in /etc/sluice.toml line 2, column 19: illegal character in numeric literal (text needs quotes: drain-timeout = "15s")',
    );
    expect(errorOf("drain-timeout = 1\ndrain-timeout = 2\n")).toStartWith("Invalid TOML in /etc/sluice.toml line 2, column 1: ");
  });

  test("a key set twice is named, with both its lines", () => {
    // "trying to redefine an already defined table or value", after a line appended to a file that had it.
    expect(errorOf('http-port = 8080\n# appended\ndrain-timeout = "5s"\nhttp-port = 9090\n')).toStartWith(
      "Invalid TOML in /etc/sluice.toml line 4, column 1: http-port is set twice, on line 1 and here: keep one\n",
    );
    expect(errorOf('drain-timeout = "5s"\r\n"drain-timeout" = "6s"\r\n')).toStartWith(
      "Invalid TOML in /etc/sluice.toml line 2, column 1: drain-timeout is set twice, on line 1 and here: keep one\n",
    );
  });

  test("the quotes text needs are shown on the line's own key and value, not on drain-timeout's (but never a credential)", () => {
    expect(errorOf("http-port = 8080\ntrusted-proxies = 10.0.0.0/8, 127.0.0.1 # the LB\n")).toStartWith(
      'Invalid TOML in /etc/sluice.toml line 2, column 23: illegal character in numeric literal (text needs quotes: trusted-proxies = "10.0.0.0/8, 127.0.0.1")\n',
    );
    expect(errorOf("access-log = False\r\n")).toStartWith('Invalid TOML in /etc/sluice.toml line 1, column 14: invalid value (text needs quotes: access-log = "False")\n');
    expect(errorOf("OTEL_EXPORTER_OTLP_HEADERS = api-key=s3cret\n")).toStartWith(
      'Invalid TOML in /etc/sluice.toml line 1, column 30: invalid value (text needs quotes: drain-timeout = "15s")\n',
    );
    expect(errorOf("OTEL_EXPORTER_OTLP_HEADERS = api-key=s3cret\n")).not.toContain("s3cret");
  });

  test("the lines shown around invalid TOML are cut around the column: a 200 kB line was shown whole", () => {
    const long = "x".repeat(200_000);
    expect(errorOf(`# ${long}\nlog-level = debug\n# ${long}\n`)).toBe(
      [
        "Invalid TOML in /etc/sluice.toml line 2, column 13: invalid value (text needs quotes: log-level = \"debug\")",
        `1:  # ${"x".repeat(98)}...`,
        "2:  log-level = debug",
        "                ^",
        `3:  # ${"x".repeat(98)}...`,
      ].join("\n"),
    );
    // Far along a line, the window moves with the column, and the mark with it.
    const message = errorOf(`public-dir = "${long}" 15s\n`);
    expect(message.length).toBeLessThan(400);
    const [, shown, mark] = message.split("\n");
    expect(shown).toStartWith("1:  ...x");
    expect(shown![mark!.indexOf("^")]).toBe("1");
  });

  test("a table, whichever way it is written", () => {
    const table = (name: string, line: number) =>
      `Cannot use the table "${name}" in /etc/sluice.toml line ${line}: options go at the top level, before any [table], named as their flags (drain-timeout = "15s")`;
    expect(errorOf("http-port = 8080\n\n[server]\nport = 1\n")).toBe(table("server", 3));
    expect(errorOf("http-port = 8080\nserver.port = 1\n")).toBe(table("server", 2));
    expect(errorOf("server = { port = 1 }")).toBe(table("server", 1));
    expect(errorOf('[sluice]\ndrain-timeout = "3s"')).toBe(table("sluice", 1));
    expect(errorOf("[drain-timeout]\nx = 1")).toBe(table("drain-timeout", 1));
  });

  test("config inside the file", () => {
    expect(errorOf('http-port = 8080\nconfig = "/etc/other.toml"')).toBe(
      'Cannot set "config" in /etc/sluice.toml line 2: a configuration file cannot name another one',
    );
  });

  test("a value with no option text: a date, an array of tables or of arrays", () => {
    expect(errorOf("log-level = 1979-05-27")).toBe(
      "Cannot parse /etc/sluice.toml line 1 (log-level): expected a string, a number, a boolean or an array of them; current value is a date",
    );
    expect(errorOf("http-port = 1\n[[trusted-proxies]]\nx = 1")).toEndWith("line 2 (trusted-proxies): expected a string, a number, a boolean or an array of them; current value is an array holding a table");
    expect(errorOf('trusted-proxies = ["10.0.0.1", ["10.0.0.2"]]')).toEndWith("current value is an array holding an array");
  });
});

describe("topLevelKeyLines", () => {
  test("skips what only looks like a key: inside strings, multi-line values and comments", () => {
    const text = [
      'a = """', //              1
      "drain-timeout = 1", //    2 (inside a multi-line string)
      '"""', //                  3
      "b = '''x = 1", //         4
      "c = 2'''", //             5 (still inside)
      "d = [", //                6
      '  "e = 3",', //           7
      "  [1, 2],", //            8
      "]", //                    9
      "# drain-timeout = 9", //  10
      'f = "x # y" # [z]', //    11
      'g = """q\\"""', //        12 (an escaped quote does not close it)
      'h = 1"""', //             13
      'drain-timeout = "1s"', // 14
      'i = """j""""', //         15 (the extra quote is content)
      "[t.u]", //                16
      "k = 1", //                17 (in a table: not top level)
      "[[ 'v' ]]", //            18
      "[t]", //                  19 (already seen)
    ].join("\n");
    expect(Object.keys(parse(text))).toEqual(["a", "b", "d", "f", "g", "drain-timeout", "i", "t", "v"]);
    expect(Object.fromEntries(topLevelKeyLines(text))).toEqual({ a: 1, b: 4, d: 6, f: 11, g: 12, "drain-timeout": 14, i: 15, t: 16, v: 18 });
  });

  test("counts CRLF lines and dotted keys by their first part", () => {
    expect(Object.fromEntries(topLevelKeyLines('\r\n x.y = 1\r\n"q.r" = 2\r\nx.z = 3'))).toEqual({ x: 2, "q.r": 3 });
  });
});

describe("decodeConfigFile", () => {
  const bytes = (...parts: (string | number[])[]) =>
    Uint8Array.from(parts.flatMap((part) => (typeof part === "string" ? [...new TextEncoder().encode(part)] : part)));

  test("UTF-8 decodes, without a BOM", () => {
    expect(decodeConfigFile(PATH, bytes('ready-path = "/café"\n'))).toBe('ready-path = "/café"\n');
    expect(decodeConfigFile(PATH, bytes([0xef, 0xbb, 0xbf], "http-port = 1\n"))).toBe("http-port = 1\n");
  });

  test("invalid UTF-8 is a ConfigError naming the file and the line", () => {
    const cases: [Uint8Array, number][] = [
      [bytes('public-dir = "/srv/caf', [0xe9], '"\n'), 1],
      [bytes("http-port = 1\n\n# ", [0xc3]), 3],
      [bytes("http-port = 1\n", [0xed, 0xa0, 0x80], "\n"), 2], // an encoded surrogate
    ];
    for (const [input, line] of cases) {
      expect(() => decodeConfigFile(PATH, input)).toThrow(new ConfigError(`Invalid TOML in ${PATH} line ${line}: not valid UTF-8 (a TOML file is UTF-8)`));
    }
  });
});

describe("withSecretsMasked", () => {
  test("writes over what the OTLP headers keys hold, lines and columns kept", () => {
    const cases: [string, string][] = [
      ['OTEL_EXPORTER_OTLP_HEADERS = "a=Bearer s3cr3t"\nx = 15s\n', "OTEL_EXPORTER_OTLP_HEADERS = *****************\nx = 15s\n"],
      // Left open: to its line's end, not into the next line.
      ['OTEL_EXPORTER_OTLP_HEADERS = "a=s3cr3t\nx = "15s"\n', 'OTEL_EXPORTER_OTLP_HEADERS = *********\nx = "15s"\n'],
      ['"OTEL_EXPORTER_OTLP_TRACES_HEADERS" = """\na=s3cr3t\n"""\nx = = 1\n', '"OTEL_EXPORTER_OTLP_TRACES_HEADERS" = ***\n********\n***\nx = = 1\n'],
      ['OTEL_EXPORTER_OTLP_HEADERS = ["a=s3cr3t",\r\n  "b=2"] # c\r\nx = 1\r\n', "OTEL_EXPORTER_OTLP_HEADERS = ************\r\n************\r\nx = 1\r\n"],
      // A misspelt key, a dotted key, a table of its own, an inline table.
      ["otel_exporter_otlp_header = 'a=s3cr3t'\n", "otel_exporter_otlp_header = **********\n"],
      ['OTEL_EXPORTER_OTLP_HEADERS.a = "s3cr3t"\nx = 1\n', "OTEL_EXPORTER_OTLP_HEADERS.************\nx = 1\n"],
      ['[OTEL_EXPORTER_OTLP_HEADERS]\na = "s3cr3t"\n[x]\ny = 1\n', "[OTEL_EXPORTER_OTLP_HEADERS]\n************\n[x]\ny = 1\n"],
      ['OTEL_EXPORTER_OTLP_HEADERS = { a = "s3cr3t" }\n', "OTEL_EXPORTER_OTLP_HEADERS = ****************\n"],
      // Only keys at the start of a line: not in a comment, not in another key's string.
      ['x = "5s" # OTEL_EXPORTER_OTLP_HEADERS = "a"\ny = """\nOTEL_EXPORTER_OTLP_HEADERS = 1\n"""\n', 'x = "5s" # OTEL_EXPORTER_OTLP_HEADERS = "a"\ny = """\nOTEL_EXPORTER_OTLP_HEADERS = 1\n"""\n'],
    ];
    for (const [text, masked] of cases) expect(withSecretsMasked(text)).toBe(masked);
  });

  test("an invalid TOML error shows the masked lines", () => {
    expect(errorOf('OTEL_EXPORTER_OTLP_HEADERS = "authorization=Bearer s3cr3t"\ndrain-timeout = 15s\n')).toBe(
      `Invalid TOML in ${PATH} line 2, column 19: illegal character in numeric literal (text needs quotes: drain-timeout = "15s")\n` +
        `1:  OTEL_EXPORTER_OTLP_HEADERS = ${"*".repeat(29)}\n2:  drain-timeout = 15s\n                      ^`,
    );
  });
});
