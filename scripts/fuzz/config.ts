/**
 * @module A bounded, fixed-seed fuzzer of sluice's configuration inputs: flags, SLUICE_*
 * variables, thruster's and OTEL_* variables and the --config file. Each generated value
 * carries what it should mean (a value, or a refusal); the fuzzer checks, in process, that
 * the parsers agree and that every refusal is a ConfigError or UsageError naming the input
 * and the value; then, on the binary and under Deno, that `sluice check` exits 0, 64 or 78
 * as documented, prints one message naming the input, never a stack trace, and that the
 * durations it prints are the ones meant.
 *
 *   bun scripts/fuzz/config.ts [--seed N] [--cases N] [--spawn N] [--targets binary,deno]
 *     [--seconds N] [--reload [--base-port P]]
 *
 * --seconds (default 900) bounds the phases that start sluice; --reload adds SIGHUPs of each
 * file error class to a running sluice on ports P+1..P+13; healthchecks ask P+97..P+99, where
 * nothing listens (P: --base-port, default 22100). See scripts/fuzz/README.md.
 */

import { chmodSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, UsageError } from "../../src/cli.ts";
import { ConfigError, envName, type OptionKey, OPTIONS, resolveConfig, validateConfig } from "../../src/config.ts";
import { decodeConfigFile, loadConfigFile } from "../../src/config-file.ts";
import { formatDuration } from "../../src/config-values.ts";
import { readLines } from "../../tests/read-lines.ts";
import { arg, argv } from "./args.ts";
import { mulberry32 } from "./random.ts";

const ROOT = join(import.meta.dir, "../..");
const SEED = Number(arg("seed", "20261206"));
const CASES = Number(arg("cases", "4000"));
const SPAWNS = Number(arg("spawn", "120"));
const BASE_PORT = Number(arg("base-port", "22100"));
const DEADLINE = Date.now() + Number(arg("seconds", "900")) * 1000;
/** The first phase --seconds cut short, if any (the summary says so). */
let cutShort: string | undefined;
/** False once --seconds have passed: the phases that start sluice stop there. */
function timeLeft(phase: string): boolean {
  if (Date.now() < DEADLINE) return true;
  cutShort ??= phase;
  return false;
}
const TARGET_NAMES = arg("targets", "binary,deno").split(",").filter(Boolean);
const TARGET_COMMANDS: Record<string, string[]> = {
  binary: [join(ROOT, "dist/sluice")],
  deno: [join(ROOT, "node_modules/.bin/deno"), "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", join(ROOT, "src/main.ts")],
};

const random = mulberry32(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (max: number): number => Math.floor(random() * max);

/** What a value should do: be accepted as `value`, be refused, or either (but never mean something else). */
type Expect = { accept: unknown } | { reject: true } | { either: unknown };
interface Sample {
  text: string;
  expect: Expect;
}
const ok = (text: string, accept: unknown): Sample => ({ text, expect: { accept } });
const bad = (text: string): Sample => ({ text, expect: { reject: true } });
const either = (text: string, value: unknown): Sample => ({ text, expect: { either: value } });

const MAX_MS = 2 ** 31 - 1;
const SPACES = ["", "", "", " ", "\t", "  "];
const pad = (text: string): string => `${pick(SPACES)}${text}${pick(SPACES)}`;
const bigText = (n: number): string => (Number.isSafeInteger(n) ? String(n) : BigInt(n).toString());
/** Characters String.prototype.trim drops (accepting them around a value is lenient, not wrong). */
const TRIMMED = ["\u00a0", "\u2028", "\ufeff", "\u3000"];
const ODD = ["\u200b", "\u0665", "\uff15", "\u00e9", "\u{1f600}", "\x7f", "\x01", "\\", '"', "'", "#", "=", "$(id)", "%00"];

function durationSample(): Sample {
  const units: [string, number][] = [["ms", 1], ["s", 1000], ["m", 60_000], ["h", 3_600_000], ["", 1000]];
  switch (int(4)) {
    case 0:
    case 1: {
      const [unit, scale] = pick(units);
      const whole = pick([0, 1, 5, 30, 250, 596, 597, 999, 2147483, 2147484, int(100_000), 10 ** int(25)]);
      const frac = pick(["", "", ".5", ".0", ".25", ".0001", ".4", ".999", `.${"0".repeat(int(30))}1`]);
      const lead = pick(["", "", "0", "00000000000000000000"]);
      const text = `${lead}${bigText(whole)}${frac}${unit}`;
      const n = Number(`${bigText(whole)}${frac}`);
      const ms = Math.round(n * scale);
      if (ms > MAX_MS) return bad(pad(text));
      if (ms === 0 && n > 0) return bad(pad(text));
      return ok(pad(text), ms);
    }
    case 2:
      return bad(pick([
        "-5s", "+5s", "5e3", "5E3ms", "5 s", "5S", "5MS", "\u0665s", "\uff15s", "5s5", "1m30s", "", " ", "5.s", ".5s",
        "0x10", "Infinity", "NaN", "5ms ms", "5\u00a0s", `${"9".repeat(400)}ms`, "5d", "5us", "5µs", "5ns", "1_000ms",
        "1,5s", "٥", "5sec", "five", "--5s", "5s\n5s", `5${pick(ODD)}s`, "null", "true", "-0", "0.5h0",
      ]));
    default:
      return random() < 0.5 ? bad(`${pick(ODD)}5s`) : either(`${pick(TRIMMED)}5s${pick(TRIMMED)}`, 5000);
  }
}

const SIZE_UNITS: [string, number][] = [
  ["", 1], ["b", 1], ["B", 1], ["k", 1024], ["K", 1024], ["KB", 1000], ["kb", 1000], ["KiB", 1024], ["kib", 1024], ["KIB", 1024],
  ["m", 1024 ** 2], ["MB", 1000 ** 2], ["MiB", 1024 ** 2], ["g", 1024 ** 3], ["GB", 1000 ** 3], ["GiB", 1024 ** 3],
];
function sizeSample(): Sample {
  switch (int(3)) {
    case 0:
    case 1: {
      const [unit, scale] = pick(SIZE_UNITS);
      const whole = pick([0, 1, 10, 512, 1024, int(1_000_000), 2 ** 53, 10 ** 15, 10 ** 21]);
      const frac = pick(["", "", ".5", ".1", ".001", ".0"]);
      const space = pick(["", "", " "]);
      const text = `${bigText(whole)}${frac}${space}${unit}`;
      const n = Number(`${bigText(whole)}${frac}`);
      const bytes = Math.floor(n * scale);
      // A size that rounds to 0 would mean "no limit" or "off"; one beyond 2^53 is not exact.
      if (bytes === 0 && n > 0) return bad(pad(text));
      if (!Number.isSafeInteger(bytes)) return bad(pad(text));
      return frac === "" ? ok(pad(text), bytes) : either(pad(text), bytes); // whole bytes of a fraction: either exact or refused
    }
    default:
      return bad(pick([
        "-1", "+1", "1e6", "1 KB B", "1KiBs", "1TB", "1T", "1 k b", "", " ", "0x10", "1_000", "1,000", "\u0661", "\uff11KB",
        `${"9".repeat(400)}`, "Infinity", "1.5.5", ".5KiB", "1.KiB", "KiB", `1${pick(ODD)}KiB`, "1kiB2",
      ]));
  }
}

function booleanSample(): Sample {
  const truths = ["1", "true", "yes", "on"];
  const lies = ["0", "false", "no", "off"];
  const caseOf = (word: string): string =>
    pick([word, word.toUpperCase(), word[0]!.toUpperCase() + word.slice(1), [...word].map((c) => (random() < 0.5 ? c.toUpperCase() : c)).join("")]);
  switch (int(3)) {
    case 0:
      return ok(pad(caseOf(pick(truths))), true);
    case 1:
      return ok(pad(caseOf(pick(lies))), false);
    default:
      return bad(pick(["", " ", "t", "f", "y", "n", "2", "truee", "enabled", "disable", "-1", "true false", "10", "\u0661", `true${pick(ODD)}`]));
  }
}

function portSample(): Sample {
  switch (int(3)) {
    case 0: {
      const port = pick([0, 1, 80, 443, 8080, 65535, int(65536)]);
      return ok(pad(pick([String(port), `00${port}`])), port);
    }
    case 1:
      return bad(pick(["65536", "99999", "-1", "+80", "80.0", "8O", "1e3", "0x50", "\u0668\u0660", "\uff18\uff10", "", " ", "80 80", "80,81", `${"9".repeat(400)}`, ":80"]));
    default:
      return bad(`${int(65536)}${pick(ODD)}`);
  }
}

function hostSample(): Sample {
  switch (int(3)) {
    case 0: {
      const host = pick(["localhost", "127.0.0.1", "0.0.0.0", "example.com", "::1", "::", "fe80::1%eth0", "2001:db8::1", "::ffff:127.0.0.1", "a-b.c_d"]);
      return ok(pad(host), host);
    }
    case 1: {
      const host = pick(["::1", "::", "2001:db8::1"]);
      return ok(pad(`[${host}]`), host);
    }
    default:
      return bad(pick(["", " ", "[::1]:80", "localhost:80", "a b", "[1.2.3.4]", "[]", "[::1", "::1]", "::g", "1::2::3", "http://x", "a/b", "a@b", "[[::1]]", ":::", "1.2.3.4:5"]));
  }
}

function listenSample(): Sample {
  switch (int(3)) {
    case 0: {
      const port = pick([0, 9000, 65535, int(65536)]);
      const [text, hostname] = pick([
        [`127.0.0.1:${port}`, "127.0.0.1"], [`:${port}`, "0.0.0.0"], [`[::1]:${port}`, "::1"], [`[::]:${port}`, "::"],
        [`localhost:${port}`, "localhost"], [`0.0.0.0:${port}`, "0.0.0.0"],
      ] as const);
      return ok(pad(text), { hostname, port });
    }
    case 1:
      return ok(pad("off"), undefined);
    default:
      return bad(pick(["OFF", "Off", "none", "", "9000", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "::1:9000", "[::1]9000", "[::1]:", "[1.2.3.4]:80", "a b:80", ":-1", ":+80", "[::1]:80:80", "host:0x50", `:${"9".repeat(40)}`]));
  }
}

function cidrSample(): Sample {
  const good: [string, string][] = [
    ["10.0.0.0/8", "4/8"], ["127.0.0.1", "4/32"], ["::1", "6/128"], ["fd00::/8", "6/8"], ["0.0.0.0/0", "4/0"], ["::/0", "6/0"],
    ["192.168.1.77/24", "4/24"], ["::ffff:10.0.0.0/104", "4/8"], ["10.0.0.0/08", "4/8"],
  ];
  switch (int(3)) {
    case 0:
    case 1: {
      const parts = Array.from({ length: int(4) }, () => pick(good));
      const seps = [",", ", ", " ,", ",,", " , "];
      const text = parts.map(([cidr]) => pad(cidr)).join(pick(seps));
      return ok(pad(text), parts.map(([, shape]) => shape));
    }
    default:
      return bad(pick([
        "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/ 8", "10.0.0.0 /8", "10.0.0.0/0x8", "10.0.0/8", "10.0.0.0/8;127.0.0.1", "::/129",
        "10.0.0.0/", "/8", "256.0.0.0/8", "10.0.0.0/8/8", "fe80::1%eth0", "localhost", "10.0.0.0/8 127.0.0.1", "1.2.3.4.5", "::1/1000",
        "10.0.0.0/8,bogus", "10.0.0.0/1e1", "10.0.0.0/+8",
      ]));
  }
}

function cidrShape(value: unknown): string[] {
  return (value as { family: number; prefix: number }[]).map((c) => `${c.family}/${c.prefix}`);
}

function integerSample(): Sample {
  switch (int(3)) {
    case 0: {
      const n = pick([0, 1, 100, 1000, int(1_000_000)]);
      return ok(pad(String(n)), n);
    }
    case 1:
      return bad(pick(["-1", "+1", "1.0", "1e3", "0x10", "", " ", "1,000", "1_000", "\u0661", `${"9".repeat(400)}`, "Infinity", `1${pick(ODD)}`]));
    default:
      return bad("9".repeat(17 + int(5))); // not exact as a number: refused rather than rounded
  }
}

function choiceSample(choices: readonly string[]): Sample {
  const choice = pick(choices);
  switch (int(3)) {
    case 0:
      return ok(pad(choice), choice);
    case 1: {
      const odd = pick([choice.toUpperCase(), choice.toLowerCase(), choice[0]!.toUpperCase() + choice.slice(1)]);
      return odd === choice ? ok(odd, choice) : either(odd, choice);
    }
    default:
      return bad(pick(["", " ", `${choice}x`, `${choice},${choice}`, `${choice}${pick(ODD)}`, "15", "TERM", "SIGKILL", "warn", "debug2"]));
  }
}

type Kind = "duration" | "size" | "boolean" | "port" | "host" | "listen" | "cidrs" | "integer" | "choice" | "path" | "paths" | "ready" | "config";
const KIND_OF: Record<string, Kind> = { DURATION: "duration", SIZE: "size", BOOL: "boolean", PORT: "port", HOST: "host", "HOST:PORT|off": "listen", CIDRS: "cidrs", N: "integer", PATH: "path", PATHS: "paths" };
const CHOICES: Partial<Record<OptionKey, readonly string[]>> = {
  stopSignal: ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"],
  logLevel: ["trace", "debug", "info", "warning", "error", "fatal"],
  logFormat: ["json", "text"],
  restart: ["never", "on-failure", "always"],
};
function kindOf(key: OptionKey): Kind {
  if (key === "readyPath") return "ready";
  if (key === "config") return "config";
  if (CHOICES[key]) return "choice";
  return KIND_OF[OPTIONS[key].placeholder]!;
}

/** Waits that end in giving up (a 504, a child not ready): 0 would give up at once, and is refused. */
const GIVE_UP_AFTER: readonly OptionKey[] = ["upstreamTimeout", "readyTimeout"];

function sampleFor(key: OptionKey): Sample {
  switch (kindOf(key)) {
    case "duration": {
      const sample = durationSample();
      const accepted = "accept" in sample.expect ? sample.expect.accept : "either" in sample.expect ? sample.expect.either : undefined;
      return GIVE_UP_AFTER.includes(key) && accepted === 0 ? bad(sample.text) : sample;
    }
    case "size": return sizeSample();
    case "boolean": return booleanSample();
    case "port": return portSample();
    case "host": return hostSample();
    case "listen": return listenSample();
    case "cidrs": return cidrSample();
    case "integer": return integerSample();
    case "choice": return choiceSample(CHOICES[key]!);
    case "ready": {
      if (random() < 0.5) {
        const p = pick(["/", "/up", "/health?x=1", "/a/b", "/%20"]);
        return ok(pad(p), p);
      }
      return bad(pick(["", " ", "up", "health", "http://x/up", "/a b", "/up#x", "/u\tp", "/u\u0000p", `/up${pick(ODD.filter((c) => /[^!-~\u0080-\uffff]/.test(c)))}x`]));
    }
    case "path": {
      if (random() < 0.3) return bad(pick(["", " ", "\t"]));
      const p = pick(["public/x.html", "/tmp/nope", "a b/c.html", "x".repeat(3000)]);
      return ok(pad(p), p);
    }
    case "paths": {
      const parts = Array.from({ length: int(3) }, () => pick([".", "/tmp", "a,b", "c"]));
      const text = parts.join(pick([",", ", ", ",,"]));
      return ok(text, text.split(",").map((p) => p.trim()).filter(Boolean));
    }
    case "config": return ok("x", "x");
  }
}

/** How an accepted value compares with the meant one. */
function same(key: OptionKey, got: unknown, meant: unknown): boolean {
  if (kindOf(key) === "cidrs") return JSON.stringify(cidrShape(got)) === JSON.stringify(meant);
  return JSON.stringify(got) === JSON.stringify(meant);
}

type Source = "flag=" | "flag" | "env" | "file-string" | "file-raw";
interface Outcome {
  value?: unknown;
  error?: string;
  kind?: "usage" | "config" | "crash";
  /** The message of the rule across options (validateConfig) that the parsed values break, if any. */
  rule?: string;
}

function tomlString(text: string): string {
  return JSON.stringify(text).replace(/\\u007f/g, "\\u007F").replace(/[\u007f]/g, "\\u007F");
}

function fileFor(key: OptionKey, text: string, raw: boolean): string {
  return `# fuzz\n${OPTIONS[key].name} = ${raw ? text : tomlString(text)}\n`;
}

function flagsFor(source: Source, key: OptionKey, text: string): string[] {
  const name = OPTIONS[key].name;
  if (source === "flag=") return [`--${name}=${text}`];
  if (source === "flag") return kindOf(key) === "boolean" ? [`--${name}=${text}`] : [`--${name}`, text];
  return [];
}

/** The CLI's own path, in process: argv, environment and file text -> a value or an error. */
function resolveInProcess(args: string[], env: Record<string, string>, fileText: string | undefined, key: OptionKey): Outcome {
  try {
    const { flags, command } = parseArgs(args);
    const file = fileText === undefined ? { options: {}, otel: {} } : loadConfigFile("/fuzz.toml", decodeConfigFile("/fuzz.toml", new TextEncoder().encode(fileText)));
    const config = resolveConfig(flags, env, command, { file: file.options, otel: file.otel });
    try {
      validateConfig(config);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return { value: config[key], rule: error.message };
    }
    return { value: config[key] };
  } catch (error) {
    const kind = error instanceof UsageError ? "usage" : error instanceof ConfigError ? "config" : "crash";
    return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error), kind };
  }
}

const failures: string[] = [];
const failureKeys = new Set<string>();
function fail(signature: string, detail: string): void {
  if (failureKeys.has(signature)) return;
  failureKeys.add(signature);
  failures.push(`${signature}\n    ${detail}`);
}

function sourceName(source: Source, key: OptionKey): string {
  const name = OPTIONS[key].name;
  if (source.startsWith("flag")) return `--${name}`;
  if (source === "env") return envName(name);
  return `/fuzz.toml line 2 (${name})`;
}

// ---- Phase 1: every option, every source, in process ----
const keys = (Object.keys(OPTIONS) as OptionKey[]).filter((key) => key !== "config");
const sources: Source[] = ["flag=", "flag", "env", "file-string", "file-raw"];
for (let i = 0; i < CASES; i++) {
  const key = pick(keys);
  const sample = sampleFor(key);
  let source = pick(sources);
  // Bare in TOML only what TOML reads as the same number or boolean (no leading zeros, exact).
  if (source === "file-raw" && !/^\s*([1-9]\d{0,14}|0|true|false)\s*$/.test(sample.text)) source = "file-string";
  const env: Record<string, string> = source === "env" ? { [envName(OPTIONS[key].name)]: sample.text } : {};
  const fileText = source.startsWith("file") ? fileFor(key, sample.text, source === "file-raw") : undefined;
  const args = [...flagsFor(source, key, sample.text), "--", "app"];
  const outcome = resolveInProcess(args, env, fileText, key);
  const where = `${OPTIONS[key].name} via ${source} ${JSON.stringify(sample.text).slice(0, 120)}`;
  const expect = sample.expect;
  const emptyEnv = source === "env" && sample.text === "";
  if (outcome.kind === "crash") fail(`crash ${kindOf(key)} ${source}`, `${where}: ${outcome.error}`);
  if (emptyEnv) continue; // an empty variable counts as unset (README)
  if (outcome.error !== undefined) {
    if ("accept" in expect) fail(`refused valid ${kindOf(key)} ${source}`, `${where}: ${outcome.error}`);
    // A value starting with "--" after a separate flag is a missing value (usage); otherwise a config error naming input and value.
    const usage = source === "flag" && (sample.text.startsWith("--") || sample.text === "");
    if (outcome.kind === "usage" && !usage && !(source === "flag" && sample.text === "")) fail(`usage error for a value ${kindOf(key)} ${source}`, `${where}: ${outcome.error}`);
    if (outcome.kind === "config") {
      const toml = source.startsWith("file") && outcome.error.includes("Invalid TOML in /fuzz.toml line 2, column");
      if (toml) continue;
      if (!outcome.error.includes(sourceName(source, key))) fail(`message does not name the source ${kindOf(key)} ${source}`, `${where}: ${outcome.error}`);
      // A bare TOML number or boolean is its own text, without the spaces around it.
      const written = source === "file-raw" ? sample.text.trim() : sample.text;
      if (!outcome.error.includes(`"${written}"`)) fail(`message does not quote the value ${kindOf(key)} ${source}`, `${where}: ${outcome.error}`);
    }
    continue;
  }
  if ("reject" in expect) {
    fail(`accepted a bad ${kindOf(key)} ${source} -> ${JSON.stringify(outcome.value)?.slice(0, 60)}`, `${where}`);
    continue;
  }
  const meant = "accept" in expect ? expect.accept : expect.either;
  if (!same(key, outcome.value, meant)) {
    fail(`different value for ${kindOf(key)} ${source}`, `${where}: meant ${JSON.stringify(meant)}, got ${JSON.stringify(outcome.value, (_k, v) => typeof v === "bigint" ? String(v) : v)}`);
  }
}

// ---- Phase 2: precedence, flag > env > file > thruster > default, in process ----
for (let i = 0; i < CASES / 4; i++) {
  const key = pick(keys.filter((k) => ["duration", "size", "port", "boolean", "choice"].includes(kindOf(k))));
  const samples = [0, 1, 2, 3].map(() => {
    let s: Sample;
    let tries = 0;
    do s = sampleFor(key); while (!("accept" in s.expect) && ++tries < 1000);
    if (!("accept" in s.expect)) throw new Error(`no valid sample for ${key}`);
    return s;
  });
  const present = samples.map(() => random() < 0.6);
  const [flag, env, file, thruster] = samples;
  const spec = OPTIONS[key] as { thruster?: { name: string } };
  const environment: Record<string, string> = {};
  if (present[1]) environment[envName(OPTIONS[key].name)] = env!.text;
  const plainThruster = spec.thruster && !("convert" in spec.thruster);
  if (present[3] && plainThruster) environment[`THRUSTER_${spec.thruster!.name}`] = thruster!.text;
  const args = [...(present[0] ? flagsFor(pick(["flag=", "flag"]), key, flag!.text) : []), "--", "app"];
  const fileText = present[2] ? fileFor(key, file!.text, false) : undefined;
  const outcome = resolveInProcess(args, environment, fileText, key);
  const winner = present[0] ? flag : present[1] && env!.text !== "" ? env : present[2] ? file : present[3] && plainThruster ? thruster : undefined;
  if (outcome.error) {
    fail(`precedence: refused ${kindOf(key)}`, `${OPTIONS[key].name} ${JSON.stringify({ args, environment, fileText })}: ${outcome.error}`);
    continue;
  }
  if (winner && !same(key, outcome.value, (winner.expect as { accept: unknown }).accept)) {
    fail(`precedence: wrong source won for ${kindOf(key)}`, `${OPTIONS[key].name} ${JSON.stringify({ args, environment, fileText })}: got ${JSON.stringify(outcome.value)}`);
  }
}

// ---- Phase 2b: thruster's variables as thruster reads them (Go's Atoi and ParseBool), in process ----
const GO_INT = /^[+-]?\d+$/;
const GO_BOOL: Record<string, boolean> = { 1: true, t: true, T: true, TRUE: true, true: true, True: true, 0: false, f: false, F: false, FALSE: false, false: false, False: false };
const thrusterKeys = keys.filter((key) => (OPTIONS[key] as { thruster?: unknown }).thruster !== undefined && key !== "badGatewayPage");
for (let i = 0; i < CASES / 4; i++) {
  const key = pick(thrusterKeys);
  const variable = (OPTIONS[key] as unknown as { thruster: { name: string } }).thruster.name;
  const prefixed = random() < 0.5;
  const name = prefixed ? `THRUSTER_${variable}` : variable;
  const kind = kindOf(key);
  const numeric = kind === "duration" || kind === "size" || kind === "port";
  const text = numeric
    ? pick(["+81", "081", "81", "-1", "10MB", "30s", "1.5", " 81", "81 ", "", "0", "1e3", "0x10", "\u0668\u0661"])
    : pick([...Object.keys(GO_BOOL), "yes", "on", "no", "TrUe", " true", "", "2", "debug", "express:*"]);
  const outcome = resolveInProcess(["--", "app"], { [name]: text }, undefined, key);
  const where = `${name}=${JSON.stringify(text)}`;
  const readable = numeric ? GO_INT.test(text) : text in GO_BOOL;
  const defaults = resolveInProcess(["--", "app"], {}, undefined, key).value;
  if (text === "") {
    if (outcome.error || !same(key, outcome.value, kind === "cidrs" ? cidrShape(defaults) : defaults)) fail(`thruster: empty ${name} not unset`, `${where}: ${outcome.error ?? JSON.stringify(outcome.value)}`);
    continue;
  }
  if (!readable) {
    if (prefixed && !outcome.error) fail(`thruster: accepted what thruster cannot read (${kind}, prefixed)`, `${where} -> ${JSON.stringify(outcome.value)}`);
    if (!prefixed && (outcome.error || JSON.stringify(outcome.value) !== JSON.stringify(defaults, (_k, v) => (typeof v === "bigint" ? String(v) : v)) && kind !== "cidrs")) {
      fail(`thruster: unprefixed value thruster cannot read not ignored (${kind})`, `${where} -> ${outcome.error ?? JSON.stringify(outcome.value)}`);
    }
    continue;
  }
  if (numeric) {
    const n = Number(text.replace(/^\+/, ""));
    const meant = kind === "duration" ? n * 1000 : n;
    // A negative number thruster reads, but means nothing: ignored unprefixed, an error prefixed.
    if (n < 0) {
      if (prefixed ? !outcome.error : outcome.value !== defaults) fail(`thruster: negative ${name}`, `${where} -> ${outcome.error ?? JSON.stringify(outcome.value)}`);
      continue;
    }
    if (outcome.error === undefined && outcome.value !== meant) fail(`thruster: different value (${kind})`, `${where} -> ${JSON.stringify(outcome.value)}, meant ${meant}`);
    if (outcome.error !== undefined && n >= 0 && n <= 65535) fail(`thruster: refused a readable number (${kind})`, `${where}: ${outcome.error}`);
  } else if (outcome.error) {
    fail(`thruster: refused a readable boolean (${key})`, `${where}: ${outcome.error}`);
  }
}

// ---- Phase 3: the binary and Deno: exit codes, messages, values used ----
const work = mkdtempSync(join(tmpdir(), "sluice-cfgfuzz-"));
const BUDGET_KEYS: OptionKey[] = ["shutdownDelay", "drainTimeout", "stopTimeout", "flushTimeout"];
function budgetOf(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of stdout.matchAll(/^ {2}(shutdown-delay|drain-timeout|stop-timeout|flush-timeout|grace-period)\s+(\S+)/gm)) out[match[1]!] = match[2]!;
  return out;
}
function spawnCheck(target: string, args: string[], env: Record<string, string>): { code: number; stdout: string; stderr: string } {
  const result = Bun.spawnSync([...TARGET_COMMANDS[target]!, ...args], {
    cwd: work,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work, ...env },
    timeout: 30_000,
    stdin: "ignore",
  });
  return { code: result.exitCode ?? -1, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
}
function checkOutput(where: string, stderr: string): void {
  // Deno itself warns (twice) about an OTEL_SDK_DISABLED other than true/false before sluice runs (docs/runtime-notes.md).
  stderr = stderr.replace(/^'OTEL_SDK_DISABLED' env var value not recognized.*\n/gm, "");
  if (/\n\s+at |error: Uncaught|Unhandled|unhandled|panic|Segmentation/.test(stderr)) fail(`stack trace or crash: ${where.split(" ")[0]}`, `${where}: ${stderr.slice(0, 600)}`);
  const lines = stderr.trimEnd().split("\n").filter((line) => line !== "");
  if (lines.length > 0 && !/^sluice( healthcheck)?: /.test(lines[0]!)) fail(`stderr not a sluice message`, `${where}: ${stderr.slice(0, 300)}`);
}
for (const target of TARGET_NAMES) {
  const spawnRandom = mulberry32(SEED + target.length);
  const count = target === "deno" ? Math.ceil(SPAWNS / 3) : SPAWNS;
  for (let i = 0; i < count && timeLeft("phase 3"); i++) {
    const key = BUDGET_KEYS.includes(keys[Math.floor(spawnRandom() * keys.length)]!) || spawnRandom() < 0.5
      ? BUDGET_KEYS[Math.floor(spawnRandom() * BUDGET_KEYS.length)]!
      : keys[Math.floor(spawnRandom() * keys.length)]!;
    const sample = sampleFor(key);
    const source = pick(sources);
    if (/[\0]/.test(sample.text)) continue;
    const env: Record<string, string> = source === "env" ? { [envName(OPTIONS[key].name)]: sample.text } : {};
    let args = flagsFor(source === "file-raw" ? "file-string" : source, key, sample.text);
    const path = join(work, `c${i}.toml`);
    if (source.startsWith("file")) {
      writeFileSync(path, fileFor(key, sample.text, false).replace("/fuzz.toml", path));
      args = ["--config", path];
    }
    const { code, stdout, stderr } = spawnCheck(target, ["check", ...args], env);
    const where = `${target} ${OPTIONS[key].name} via ${source} ${JSON.stringify(sample.text).slice(0, 100)} exit ${code}`;
    checkOutput(where, stderr);
    if (![0, 64, 78].includes(code)) fail(`${target}: exit ${code}`, `${where}: ${stderr.slice(0, 300)}`);
    const inProcess = resolveInProcess([...flagsFor(source === "file-raw" ? "file-string" : source, key, sample.text), "--", "app"], env, source.startsWith("file") ? fileFor(key, sample.text, false) : undefined, key);
    if (code === 0 && BUDGET_KEYS.includes(key) && inProcess.error === undefined) {
      const shown = budgetOf(stdout)[OPTIONS[key].name];
      if (shown !== formatDuration(inProcess.value as number)) fail(`${target}: check shows another value`, `${where}: shows ${shown}, parsed ${inProcess.value}`);
    }
    // A value the parser takes can still break a rule across options (validateConfig: a
    // --target-port of 0, two ports alike, a stop budget over --grace-period): check refuses it
    // with that rule's message, exit 78.
    if (inProcess.rule !== undefined && (code !== 78 || !stderr.replaceAll(path, "/fuzz.toml").includes(inProcess.rule))) {
      fail(`${target}: a rule across options not applied`, `${where}: expected 78 "${inProcess.rule.slice(0, 120)}", got ${stderr.slice(0, 300)}`);
    }
    if (code !== 0 && inProcess.error === undefined && inProcess.rule === undefined && !/public|x-sendfile|directory|file|page|bind|Cannot apply|both|stop budget/i.test(stderr)) {
      fail(`${target}: refused though the parser accepts`, `${where}: ${stderr.slice(0, 300)}`);
    }
  }
}

// ---- Phase 4: subcommands and argv shapes on both targets ----
const SHAPES: { args: string[]; env?: Record<string, string>; code: number | number[]; says?: RegExp }[] = [
  { args: ["version"], code: 0, says: /^$/ },
  { args: ["--version"], code: 0 },
  { args: ["--help"], code: 0 },
  { args: ["-h"], code: 0 },
  { args: [], code: 64, says: /Missing the command/ },
  { args: ["--"], code: 64, says: /Missing the command/ },
  { args: ["-x", "app"], code: 64, says: /Unknown flag -x/ },
  { args: ["--bogus", "app"], code: 64, says: /Unknown flag --bogus/ },
  { args: ["--drain-timeout"], code: 64, says: /Missing value for --drain-timeout/ },
  { args: ["--drain-timeout", "--", "app"], code: 64, says: /Missing value for --drain-timeout/ },
  { args: ["check", "--drain-timeout", "1s", "--drain-timeout", "2s"], code: 0 },
  // The last of a repeated flag wins, lists too (a wrapper appends an override).
  { args: ["check", "--trusted-proxies", "10.0.0.0/8", "--trusted-proxies=::1"], code: 0 },
  { args: ["check", "--x-sendfile-dirs=/nonexistent", "--x-sendfile-dirs", "/tmp"], code: 0 },
  { args: ["check", "--config", "/etc/hostname/x"], code: 78, says: /--config/ },
  { args: ["check", "--config", "x".repeat(5000)], code: 78, says: /--config/ },
  { args: ["check", "--access-log", "false"], code: 64, says: /takes no separate value/ },
  { args: ["check", "--no-drain-timeout"], code: 64, says: /Unknown flag --no-drain-timeout/ },
  { args: ["check", "--access-log", "off"], code: 64, says: /takes no separate value/ },
  { args: ["check", "--compression", "YES"], code: 64, says: /takes no separate value/ },
  { args: ["check", "--x-sendfile", "0"], code: 64, says: /takes no separate value/ },
  { args: ["check", "--access-log", "--", "off"], code: 0 },
  { args: ["check", "--no-access-log=true"], code: 64 },
  { args: ["check", "--grace-period", "1s"], code: 78, says: /exceeds --grace-period 1s/ },
  { args: ["check", "--http-port", "9000", "--admin-listen", ":9000"], code: 78, says: /--admin-listen and --http-port both use port 9000/ },
  { args: ["check", "--target-port", "0"], code: 78, says: /--target-port/ },
  { args: ["check", "--config", ""], code: 78, says: /--config/ },
  { args: ["check", "--config", "/nonexistent/x.toml"], code: 78, says: /no such file/ },
  { args: ["check", "--config", "/tmp"], code: 78, says: /directory/ },
  { args: ["check", "--public-dir", "/nonexistent"], code: 78, says: /--public-dir/ },
  { args: ["check", "--public-dir", "/etc/hostname"], code: 78, says: /--public-dir/ },
  { args: ["check", "--bad-gateway-page", "/nonexistent.html"], code: 78, says: /--bad-gateway-page/ },
  { args: ["check", "--bad-gateway-page", "/tmp"], code: 78, says: /--bad-gateway-page/ },
  { args: ["check", "--x-sendfile-dirs", "/nonexistent"], code: 78, says: /x-sendfile-dirs/ },
  { args: ["check", "--", "app"], code: 0 },
  { args: ["check", "app"], code: 0 },
  { args: ["healthcheck", "ftp://x"], code: 64, says: /Invalid healthcheck URL/ },
  { args: ["healthcheck", `http://127.0.0.1:${BASE_PORT + 99}/readyz`, "extra"], code: 64, says: /Too many arguments/ },
  { args: ["healthcheck", `http://127.0.0.1:${BASE_PORT + 99}/readyz`], code: 1, says: /not ready/ },
  { args: ["healthcheck", "http://[::1/readyz"], code: 64, says: /Invalid healthcheck URL/ },
  { args: ["healthcheck", "http://127.0.0.1:99999/readyz"], code: 64, says: /Invalid healthcheck URL/ },
  { args: ["healthcheck", "http://a b/readyz"], code: 64, says: /Invalid healthcheck URL/ },
  { args: ["healthcheck", "--admin-listen", "off"], code: 78, says: /--admin-listen is off/ },
  { args: ["healthcheck"], env: { SLUICE_ADMIN_LISTEN: "off" }, code: 78, says: /SLUICE_ADMIN_LISTEN is off/ },
  { args: ["healthcheck", "--admin-listen", ":0"], code: 78, says: /picks its port at start/ },
  { args: ["healthcheck", "--admin-listen", `127.0.0.1:${BASE_PORT + 98}`], code: 1, says: /not ready/ },
  { args: ["healthcheck", "--admin-listen", "bogus"], code: 78, says: /--admin-listen/ },
  { args: ["healthcheck", "--drain-timeout", "bogus", "--admin-listen", `127.0.0.1:${BASE_PORT + 98}`], code: 1 },
  { args: ["healthcheck"], env: { SLUICE_ADMIN_LISTEN: `[::1]:${BASE_PORT + 97}` }, code: 1, says: new RegExp(`\\[::1\\]:${BASE_PORT + 97}`) },
  { args: ["check"], env: { SLUICE_DRAIN_TIMEOUT: "bogus" }, code: 78, says: /SLUICE_DRAIN_TIMEOUT/ },
  { args: ["check"], env: { THRUSTER_HTTP_PORT: "bogus" }, code: 78, says: /THRUSTER_HTTP_PORT/ },
  { args: ["check"], env: { HTTP_PORT: "bogus" }, code: 0 },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }, code: 78, says: /OTEL_EXPORTER_OTLP_ENDPOINT/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_TRACES_SAMPLER: "bogus" }, code: 78, says: /OTEL_TRACES_SAMPLER/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "2" }, code: 78, says: /OTEL_TRACES_SAMPLER_ARG/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "4096" }, code: 78, says: /OTEL_BSP_MAX_EXPORT_BATCH_SIZE/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_EXPORTER_OTLP_HEADERS: "a=%zz" }, code: 78, says: /OTEL_EXPORTER_OTLP_HEADERS/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, code: 78, says: /OTEL_EXPORTER_OTLP_PROTOCOL/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_EXPORTER_OTLP_TIMEOUT: "1e3" }, code: 78, says: /OTEL_EXPORTER_OTLP_TIMEOUT/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_SDK_DISABLED: "yes" }, code: 78, says: /OTEL_SDK_DISABLED/ },
  { args: ["check"], env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://x", OTEL_RESOURCE_ATTRIBUTES: "=x" }, code: 78, says: /OTEL_RESOURCE_ATTRIBUTES/ },
  { args: ["check", `--drain-timeout=${"9".repeat(100_000)}`], code: 78, says: /--drain-timeout/ },
];
for (const target of TARGET_NAMES) {
  for (const shape of SHAPES) {
    if (!timeLeft("phase 4")) break;
    const { code, stdout, stderr } = spawnCheck(target, shape.args, shape.env ?? {});
    const where = `${target} ${JSON.stringify(shape.args).slice(0, 200)} ${JSON.stringify(shape.env ?? {})} exit ${code}`;
    checkOutput(where, stderr);
    const codes = Array.isArray(shape.code) ? shape.code : [shape.code];
    if (!codes.includes(code)) fail(`${target}: shape exit ${code}`, `${where}: ${stderr.slice(0, 300)}${stdout.slice(0, 100)}`);
    if (shape.says && shape.says.source !== "^$" && !shape.says.test(stderr)) fail(`${target}: shape message`, `${where}: ${stderr.slice(0, 300)}`);
  }
}

// ---- Phase 5: config-file syntax, in process and on both targets ----
interface FileCase {
  name: string;
  text: string | Uint8Array;
  /** The option and the value it should end up with, or the error (its text must name this line). */
  expect: { key: OptionKey; value: unknown } | { error: RegExp; line?: number };
}
const LONG = "x".repeat(200_000);
const FILE_CASES: FileCase[] = [
  { name: "comments", text: '# top\ndrain-timeout = "5s" # trailing\n# end', expect: { key: "drainTimeout", value: 5000 } },
  { name: "CRLF", text: 'stop-timeout = 3\r\ndrain-timeout = "5s"\r\n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "BOM", text: '\ufeffdrain-timeout = "5s"\n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "trailing whitespace", text: 'drain-timeout = "5s"  \t \n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "no final newline", text: 'drain-timeout = "5s"', expect: { key: "drainTimeout", value: 5000 } },
  { name: "quoted key", text: '"drain-timeout" = "5s"\n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "literal key and string", text: "'drain-timeout' = '5s'\n", expect: { key: "drainTimeout", value: 5000 } },
  { name: "multi-line string", text: 'drain-timeout = """\n5s"""\n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "float seconds", text: "drain-timeout = 1.5\n", expect: { key: "drainTimeout", value: 1500 } },
  { name: "hex port", text: "http-port = 0x1F90\n", expect: { key: "httpPort", value: 8080 } },
  { name: "underscored port", text: "http-port = 8_081\n", expect: { key: "httpPort", value: 8081 } },
  { name: "array of CIDRs", text: 'trusted-proxies = [\n  "10.0.0.0/8", # office\n  "::1",\n]\n', expect: { key: "trustedProxies", value: ["4/8", "6/128"] } },
  { name: "empty array", text: "trusted-proxies = []\n", expect: { key: "trustedProxies", value: [] } },
  { name: "boolean", text: "access-log = false\n", expect: { key: "accessLog", value: false } },
  { name: "OTEL key", text: 'OTEL_SERVICE_NAME = "x"\ndrain-timeout = "5s"\n', expect: { key: "drainTimeout", value: 5000 } },
  { name: "long comment line", text: `# ${LONG}\ndrain-timeout = "5s"\n`, expect: { key: "drainTimeout", value: 5000 } },
  { name: "long value", text: `drain-timeout = "${" ".repeat(100_000)}5s"\n`, expect: { key: "drainTimeout", value: 5000 } },
  { name: "path list item with a comma", text: 'x-sendfile-dirs = ["/srv/a,b"]\n', expect: { error: /x-sendfile-dirs/, line: 1 } },
  { name: "array for one path", text: 'public-dir = ["pub", "lic"]\n', expect: { error: /public-dir/, line: 1 } },
  { name: "duplicate key", text: 'drain-timeout = "5s"\ndrain-timeout = "6s"\n', expect: { error: /Invalid TOML/, line: 2 } },
  { name: "quoted duplicate", text: 'drain-timeout = "5s"\n"drain-timeout" = "6s"\n', expect: { error: /Invalid TOML/, line: 2 } },
  { name: "unknown key", text: '\n\ndrian-timeout = "5s"\n', expect: { error: /Unknown key "drian-timeout"/, line: 3 } },
  { name: "unknown key in CRLF file", text: "\r\na-b = 1\r\n", expect: { error: /Unknown key "a-b"/, line: 2 } },
  { name: "unknown key after BOM", text: "\ufeff\nbogus = 1\n", expect: { error: /Unknown key "bogus"/, line: 2 } },
  { name: "bad value after multi-line string", text: 'x-sendfile-dirs = """\ndrain-timeout = "1s"\n"""\ndrain-timeout = "3x"\n', expect: { error: /drain-timeout/, line: 4 } },
  { name: "bad value after array with comment", text: 'trusted-proxies = [ # ] [\n "127.0.0.1" ]\ndrain-timeout = "3x"\n', expect: { error: /drain-timeout/, line: 3 } },
  { name: "bad value, quoted key with escape", text: '\n"drain\\u002dtimeout" = "3x"\n', expect: { error: /drain-timeout/, line: 2 } },
  { name: "bad value after literal with backslash", text: "public-dir = 'C:\\'\ndrain-timeout = \"3x\"\n", expect: { error: /drain-timeout/, line: 2 } },
  { name: "bad value after multi-line literal", text: "x-sendfile-dirs = '''\na'''\ndrain-timeout = \"3x\"\n", expect: { error: /drain-timeout/, line: 3 } },
  { name: "bad value after CR-only line", text: 'stop-timeout = 3\r\ndrain-timeout = "3x"\r\n', expect: { error: /drain-timeout/, line: 2 } },
  { name: "bare text", text: "drain-timeout = 15s\n", expect: { error: /Invalid TOML.*line 1.*text needs quotes/ } },
  { name: "bare word", text: "log-level = debug\n", expect: { error: /Invalid TOML.*line 1/ } },
  { name: "bare word between long lines", text: `# ${LONG}\nlog-level = debug\n# ${LONG}\n`, expect: { error: /Invalid TOML.*line 2/ } },
  { name: "bare text far along a long line", text: `public-dir = "${LONG}" 15s\n`, expect: { error: /Invalid TOML.*line 1/ } },
  { name: "dotted key", text: "\ndrain-timeout.x = 1\n", expect: { error: /table "drain-timeout"/, line: 2 } },
  { name: "inline table", text: "drain-timeout = { a = 1 }\n", expect: { error: /table "drain-timeout"/, line: 1 } },
  { name: "table", text: '\n[sluice]\ndrain-timeout = "5s"\n', expect: { error: /table "sluice"/, line: 2 } },
  { name: "array of tables", text: "[[x]]\n", expect: { error: /"x"/, line: 1 } },
  { name: "OTEL key typo", text: 'OTEL_EXPORTER_OTLP_ENDPIONT = "http://127.0.0.1:4318"\n', expect: { error: /Unknown key "OTEL_EXPORTER_OTLP_ENDPIONT"/, line: 1 } },
  { name: "OTEL key sluice does not read", text: 'OTEL_PROPAGATORS = "b3"\n', expect: { error: /Unknown key "OTEL_PROPAGATORS"/, line: 1 } },
  { name: "config inside", text: 'config = "/etc/x"\n', expect: { error: /Cannot set "config"/, line: 1 } },
  { name: "date", text: "drain-timeout = 1979-05-27\n", expect: { error: /a date/, line: 1 } },
  { name: "nested array", text: 'trusted-proxies = [["10.0.0.0/8"]]\n', expect: { error: /an array holding an array/, line: 1 } },
  { name: "NUL byte", text: 'drain-timeout = "5s\u0000"\n', expect: { error: /Invalid TOML|drain-timeout/, line: 1 } },
  { name: "not UTF-8", text: new Uint8Array([...new TextEncoder().encode('drain-timeout = "5s"\npublic-dir = "'), 0xe9, 0x22, 0x0a]), expect: { error: /not valid UTF-8/, line: 2 } },
  { name: "lone surrogate escape", text: 'public-dir = "\\uD800"\n', expect: { error: /Invalid TOML/, line: 1 } },
  { name: "negative", text: "drain-timeout = -5\n", expect: { error: /drain-timeout.*"-5"/, line: 1 } },
  { name: "inf", text: "drain-timeout = inf\n", expect: { error: /drain-timeout/, line: 1 } },
  { name: "tiny float", text: "drain-timeout = 1e-7\n", expect: { error: /drain-timeout/, line: 1 } },
  { name: "huge integer", text: "max-request-body = 9007199254740993\n", expect: { error: /max-request-body|Invalid TOML/, line: 1 } },
  { name: "empty string", text: 'drain-timeout = ""\n', expect: { error: /drain-timeout.*""/, line: 1 } },
  { name: "empty file", text: "", expect: { key: "drainTimeout", value: 15000 } },
  { name: "only a BOM", text: "\ufeff", expect: { key: "drainTimeout", value: 15000 } },
];
function fileBytes(text: string | Uint8Array): Uint8Array {
  return typeof text === "string" ? new TextEncoder().encode(text) : text;
}
for (const [index, fileCase] of FILE_CASES.entries()) {
  const path = join(work, `syntax-${index}.toml`);
  writeFileSync(path, fileBytes(fileCase.text));
  let outcome: Outcome;
  try {
    const file = loadConfigFile(path, decodeConfigFile(path, fileBytes(fileCase.text)));
    const config = resolveConfig({}, {}, ["app"], { file: file.options, otel: file.otel });
    outcome = "key" in fileCase.expect ? { value: config[fileCase.expect.key] } : { value: undefined };
  } catch (error) {
    outcome = { error: error instanceof Error ? error.message : String(error), kind: error instanceof ConfigError ? "config" : "crash" };
  }
  const where = `file case "${fileCase.name}"`;
  if (outcome.kind === "crash") fail(`${where}: crash`, outcome.error!);
  const expect = fileCase.expect;
  if ("key" in expect) {
    if (outcome.error) fail(`${where}: refused`, outcome.error.slice(0, 300));
    else if (!same(expect.key, outcome.value, expect.value)) {
      fail(`${where}: different value`, `meant ${JSON.stringify(expect.value)}, got ${JSON.stringify(outcome.value, (_k, v) => (typeof v === "bigint" ? String(v) : v))}`);
    }
  } else if (!outcome.error) {
    fail(`${where}: accepted`, JSON.stringify(outcome.value));
  } else {
    if (!expect.error.test(outcome.error)) fail(`${where}: message`, outcome.error.slice(0, 300));
    if (expect.line !== undefined && !outcome.error.includes(`${path} line ${expect.line}`)) fail(`${where}: wrong or no line`, outcome.error.slice(0, 300));
  }
  for (const target of TARGET_NAMES) {
    if (!timeLeft("phase 5")) break;
    const { code, stderr } = spawnCheck(target, ["check", "--config", path], {});
    checkOutput(`${target} ${where} exit ${code}`, stderr);
    const want = "key" in expect ? 0 : 78;
    if (code !== want) fail(`${target} ${where}: exit ${code}`, stderr.slice(0, 300));
    // No value in these is long: a long message is a long line shown whole.
    if (stderr.length > 2000 && fileCase.name !== "long value") fail(`${target} ${where}: message of ${stderr.length} characters`, stderr.slice(0, 300));
    if ("error" in expect && expect.line !== undefined && !stderr.includes(`line ${expect.line}`)) fail(`${target} ${where}: no line in message`, stderr.slice(0, 300));
  }
}

// ---- Phase 5b: the line a file's bad value is named by, in random documents (topLevelKeyLines' scan) ----
const SNIPPETS: string[] = [
  "# a comment with \"quotes\" and 'apostrophes' and [brackets] and drain-timeout = 1",
  "",
  "   \t",
  'x-sendfile-dirs = """\ndrain-timeout = "1s"\n\\"""\n"""',
  "x-sendfile-dirs = '''\n'drain-timeout' = 1\n'''",
  'trusted-proxies = [ # ] [ "\n  "127.0.0.1", # ]\n  \'::1\',\n]',
  "public-dir = 'C:\\'",
  'public-dir = "a\\"b # not a comment"',
  '"x-sendfile-dirs" = "a=b"',
  "'trusted-proxies' = []",
  'OTEL_SERVICE_NAME = "a # b"',
  'OTEL_RESOURCE_ATTRIBUTES = ["a=1",\n"b=2"]',
  "stop-timeout = 1 # trailing",
  '  access-log   =   true',
  'ready-path = "/up"',
  'public-dir = """a\\\n   b"""',
  'public-dir = """x""""',
  "public-dir = '''x''''",
  'public-dir = """\n# not a comment\n[not-a-table]\n"""',
  "log-format = 'text' # ' \" [",
];
const usedOnce = (snippet: string): string | undefined => /^\s*["']?([A-Za-z_-]+)["']?\s*=/.exec(snippet)?.[1];
for (let i = 0; i < CASES / 20; i++) {
  const parts: string[] = [];
  const used = new Set<string>();
  const count = 1 + int(8);
  for (let j = 0; j < count; j++) {
    const snippet = pick(SNIPPETS);
    const key = usedOnce(snippet);
    if (key !== undefined && used.has(key)) continue;
    if (key !== undefined) used.add(key);
    parts.push(snippet);
  }
  const at = int(parts.length + 1);
  parts.splice(at, 0, pick(['drain-timeout = "3x"', '"drain-timeout" = "3x"', "'drain-timeout'='3x'", 'drain-timeout = "3x" # bad']));
  const crlf = random() < 0.3;
  const bom = random() < 0.2 ? "\ufeff" : "";
  let text = parts.join("\n");
  const before = parts.slice(0, at).join("\n");
  const expectedLine = at === 0 ? 1 : before.split("\n").length + 1;
  if (crlf) text = text.replaceAll("\n", "\r\n");
  text = bom + text;
  const outcome = (() => {
    try {
      const file = loadConfigFile("/fuzz.toml", decodeConfigFile("/fuzz.toml", new TextEncoder().encode(text)));
      resolveConfig({}, {}, ["app"], { file: file.options, otel: file.otel });
      return "accepted";
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  })();
  if (!outcome.includes(`/fuzz.toml line ${expectedLine} (drain-timeout)`)) {
    fail(`file line: wrong line for a bad value`, `expected line ${expectedLine}, got ${outcome.slice(0, 200)}\n    ${JSON.stringify(text).slice(0, 600)}`);
  }
}

// ---- Phase 6: SIGHUP reloads of each error class on both targets: old config kept, reason logged with the line ----
const BUN = join(ROOT, "node_modules/.bin/bun");
const GOOD = 'shutdown-delay = 0\nflush-timeout = "1s"\n';
/** A file to write, or something to do to the file instead (and undo after). */
interface ReloadCase {
  name: string;
  text?: string | Uint8Array;
  prepare?: (path: string) => void;
  restore?: (path: string) => void;
  says: RegExp;
}
const RELOAD_ERRORS: ReloadCase[] = [
  ...FILE_CASES.filter((c) => "error" in c.expect && c.name !== "path list item with a comma" && c.name !== "array for one path" && c.name !== "unknown key after BOM").map((c) => ({
    name: c.name,
    text: typeof c.text === "string" ? `${GOOD}${c.text}` : new Uint8Array([...fileBytes(GOOD), ...c.text]),
    // The file above it moves every line down by two.
    says: new RegExp((c.expect as { error: RegExp }).error.source.replace(/line (\d+)/, (_, n: string) => `line ${Number(n) + 2}`)),
  })),
  { name: "bad duration", text: `${GOOD}stop-timeout = "3x"\n`, says: /line 3 \(stop-timeout\).*"3x"/ },
  { name: "budget over the grace period", text: `${GOOD}grace-period = "1s"\n`, says: /exceeds .*line 3 \(grace-period\)/ },
  { name: "missing public dir", text: `${GOOD}public-dir = "/nonexistent-dir"\n`, says: /line 3 \(public-dir\)/ },
  { name: "bad OTEL key", text: `${GOOD}OTEL_EXPORTER_OTLP_ENDPOINT = "not a url"\n`, says: /line 3 \(OTEL_EXPORTER_OTLP_ENDPOINT\)/ },
  { name: "file deleted", prepare: (path) => rmSync(path), says: /Cannot read the configuration file .* \(--config\): no such file/ },
  { name: "file replaced by a directory", prepare: (path) => (rmSync(path, { force: true }), mkdirSync(path)), restore: (path) => rmdirSync(path), says: /it is a directory/ },
  { name: "file unreadable", prepare: (path) => (writeFileSync(path, GOOD), chmodSync(path, 0)), restore: (path) => chmodSync(path, 0o644), says: /permission denied/ },
  {
    name: "error page that is a pipe",
    prepare: (path) => {
      const fifo = `${path}.fifo`;
      rmSync(fifo, { force: true });
      Bun.spawnSync(["mkfifo", fifo]);
      writeFileSync(path, `${GOOD}bad-gateway-page = "${fifo}"\n`);
    },
    says: /line 3 \(bad-gateway-page\)\): not a regular file/,
  },
  { name: "error page that is a device", text: `${GOOD}unavailable-page = "/dev/zero"\n`, says: /line 3 \(unavailable-page\)\): not a regular file/ },
  { name: "bad OTEL header key", text: `${GOOD}OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318"\nOTEL_EXPORTER_OTLP_HEADERS = "a b=1"\n`, says: /line 4 \(OTEL_EXPORTER_OTLP_HEADERS\)/ },
];
async function waitUntil(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}
if (argv.includes("--reload")) {
  for (const [t, target] of TARGET_NAMES.entries()) {
    const base = BASE_PORT + t * 10;
    const [httpPort, targetPort, adminPort] = [base + 1, base + 2, base + 3];
    const path = join(work, `reload-${target}.toml`);
    writeFileSync(path, GOOD);
    // As root, without the capabilities that override file modes: a mode-000 file is then unreadable.
    const unprivileged = process.getuid?.() === 0 ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] : [];
    const proc = Bun.spawn([...unprivileged, ...TARGET_COMMANDS[target]!, "--config", path, "--http-port", String(httpPort), "--target-port", String(targetPort),
      "--admin-listen", `127.0.0.1:${adminPort}`, "--access-log=false", "--", BUN, join(ROOT, "tests/fixtures/app.ts")], {
      cwd: work, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work }, stdout: "pipe", stderr: "pipe", stdin: "ignore",
    });
    console.log(`reload phase: ${target} sluice pid ${proc.pid}`);
    const records: Record<string, unknown>[] = [];
    let stderrText = "";
    void readLines(proc.stdout, (line) => {
      try { records.push(JSON.parse(line)); } catch { /* the child's output */ }
    });
    void readLines(proc.stderr, (line) => (stderrText += `${line}\n`));
    const reloads = () => records.filter((r) => r.event === "reload");
    try {
      await waitUntil(`${target} ready`, () => records.some((r) => r.event === "ready"), 30_000);
      for (const reloadCase of RELOAD_ERRORS) {
        if (!timeLeft("phase 6")) break;
        const before = reloads().length;
        if (reloadCase.text !== undefined) writeFileSync(path, fileBytes(reloadCase.text));
        reloadCase.prepare?.(path);
        proc.kill("SIGHUP");
        await waitUntil(`${target} reload of ${reloadCase.name}`, () => reloads().length > before);
        const record = reloads().at(-1)!;
        const where = `${target} reload "${reloadCase.name}"`;
        if (record.result !== "error") fail(`${where}: result ${String(record.result)}`, JSON.stringify(record).slice(0, 400));
        else if (!reloadCase.says.test(String(record.error))) fail(`${where}: reason`, String(record.error).slice(0, 400));
        const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status, (e) => String(e));
        const proxied = await fetch(`http://127.0.0.1:${httpPort}/`).then((r) => r.status, (e) => String(e));
        if (ready !== 200 || proxied !== 200) fail(`${where}: not serving`, `readyz ${ready}, proxied ${proxied}`);
        reloadCase.restore?.(path);
      }
      // The last good file differs from the first in stop-timeout only: a failed reload applied nothing.
      const before = reloads().length;
      writeFileSync(path, `${GOOD}stop-timeout = 2\n`);
      proc.kill("SIGHUP");
      await waitUntil(`${target} good reload`, () => reloads().length > before);
      const record = reloads().at(-1)!;
      if (record.result !== "ok" || JSON.stringify(record.changed) !== '["stop-timeout"]') fail(`${target} good reload after bad ones`, JSON.stringify(record));
      if (/\n\s+at |Unhandled|Uncaught/.test(stderrText)) fail(`${target} reload: stack trace on stderr`, stderrText.slice(0, 400));
    } catch (error) {
      fail(`${target} reload phase: ${error instanceof Error ? error.message : String(error)}`, stderrText.slice(0, 400));
    } finally {
      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => "timeout")]);
      if (code === "timeout") proc.kill("SIGKILL");
      else if (code !== 0) fail(`${target} reload phase: exit ${code}`, stderrText.slice(0, 400));
    }
  }
}

rmSync(work, { recursive: true, force: true });
console.log(`seed ${SEED}, ${CASES} in-process cases, ${SPAWNS} spawns per target (${TARGET_NAMES.join(", ")})`);
if (cutShort !== undefined) console.log(`stopped at --seconds in ${cutShort}: the phases from there on ran in part or not at all`);
console.log(failures.length === 0 ? "no findings" : `${failures.length} findings:\n${failures.join("\n")}`);
process.exit(failures.length === 0 ? 0 : 1);
