/** @module The command line: argv and environment -> a subcommand, a Config, or a usage error. */

import {
  type Config,
  ConfigError,
  envName,
  nearestOptionName,
  optionKeyOf,
  type OptionKey,
  OPTIONS,
  type OptionSources,
  resolveConfig,
  resolveWithSource,
  stopBudget,
  unknownVariables,
  unknownVariableText,
  validateConfig,
} from "./config.ts";
import { type ConfigFile, decodeConfigFile, loadConfigFile } from "./config-file.ts";
import { formatDuration, hostPort, parseBoolean } from "./config-values.ts";
import { prepareFiles } from "./files/prepare-files.ts";
import { ExitCode } from "./exit-codes.ts";
import { readErrorReason } from "./read-errors.ts";
import { flushLogging, log, setupLogging } from "./log.ts";
import { LineOutput } from "./output.ts";
import { unappliedClientLimits, validateClientLimits } from "./client-limits.ts";
import type { ProcessSignals } from "./process-signals.ts";
import type { Runtime } from "./runtime/types.ts";
import { Service } from "./service.ts";
import { raceDeadline } from "./deadlines.ts";
import { subcommandOf } from "./subcommand.ts";
import { versionLine } from "./version.ts";
import { Http1Client, UpstreamConnectError } from "./upstream/http1-client.ts";

/** A command line that cannot be understood; exits with ExitCode.USAGE. */
export class UsageError extends Error {
  override name = "UsageError";
}

const USAGE = `Usage:
  sluice [options] [--] <command> [args...]   supervise <command>, proxy to it
  sluice check [options]                      validate options, print the shutdown budget
  sluice healthcheck [options] [url]          exit 0 when sluice is ready (default: --admin-listen's /readyz)
  sluice version                              print version, commit and runtime
`;

function isBooleanOption(key: OptionKey): boolean {
  return OPTIONS[key].placeholder === "BOOL";
}

/** The boolean `text` spells as a value (true, no, ON, 1, ...), or undefined for any other word. */
function booleanOf(text: string): boolean | undefined {
  try {
    return parseBoolean(text);
  } catch {
    return undefined;
  }
}

/**
 * Splits `args` into options and the command. Options end at `--` or at the first
 * argument that is not a flag. Forms: `--name value`, `--name=value`; booleans also
 * `--name` and `--no-name`.
 */
export function parseArgs(args: readonly string[]): { flags: OptionSources; command: string[] } {
  const flags: OptionSources = {};
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("--")) {
      if (arg.startsWith("-") && arg !== "-") throw new UsageError(unknownFlagText(arg.split("=")[0]!));
      // `sluice run -- rails server`, as other supervisors are run: "run" would be spawned as the
      // app, with "--" as its first argument. A program of that name comes after --.
      if (NOT_SUBCOMMANDS.includes(arg) && args[i + 1]?.startsWith("-")) {
        throw new UsageError(`sluice has no "${arg}" command: write sluice [options] -- <command> [args...] (or put -- before a program named ${arg})`);
      }
      break;
    }
    const eq = arg.indexOf("=");
    let name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
    let text = eq < 0 ? undefined : arg.slice(eq + 1);
    let key = optionKeyOf(name);
    if (key === undefined && name.startsWith("no-")) {
      const negated = optionKeyOf(name.slice(3));
      if (negated !== undefined && isBooleanOption(negated)) {
        // `--no-access-log=true` is not `--no-access-log`'s "unknown flag": it takes no value.
        if (text !== undefined) throw new UsageError(`--${name} takes no value: write --${name}, or --${name.slice(3)}=true|false`);
        key = negated;
        name = name.slice(3);
        text = "false";
      } else if (negated !== undefined) {
        throw new UsageError(`Unknown flag --${name}: --${name.slice(3)} is not a boolean, it takes a value (--${name.slice(3)} ${OPTIONS[negated].placeholder})`);
      }
    }
    if (key === undefined) throw new UsageError(unknownFlagText(`--${name}`));
    if (text === undefined) {
      if (isBooleanOption(key)) {
        // `--access-log false -- app` would run the command `false`, and the log stay on; so
        // would every spelling of a boolean (`--compression yes` would run yes(1), and `sluice
        // check --access-log off` say the configuration was valid, the log on).
        const next = args[i + 1];
        const value = next === undefined ? undefined : booleanOf(next);
        if (value !== undefined) {
          throw new UsageError(
            `--${name} takes no separate value: write --${name}=${next}${value ? "" : ` or --no-${name}`} ("${next}" would be taken as the app's command; put -- before it if it is one)`,
          );
        }
        text = "true";
      } else {
        const next = args[++i];
        // No value of any option starts with "--": `--drain-timeout --stop-timeout 1s` and
        // `--drain-timeout -- app` lack a value rather than have a strange one.
        if (next === undefined || next.startsWith("--")) throw new UsageError(`Missing value for --${name}`);
        text = next;
      }
    }
    flags[key] = { text, from: `--${name}` };
  }
  return { flags, command: args.slice(i) };
}

/** Words other supervisors take as their subcommand to run the app; sluice runs it without one. */
const NOT_SUBCOMMANDS = ["run", "start", "serve", "exec"];

/** "Unknown flag --drain-timout (did you mean --drain-timeout?)": the suggestion only when one option is near. */
function unknownFlagText(flag: string): string {
  const near = nearestOptionName(flag);
  return `Unknown flag ${flag}${near === undefined ? "" : ` (did you mean --${near}?)`}`;
}

export function helpText(): string {
  const rows = Object.values(OPTIONS).map((spec) => {
    const flag = `--${spec.name} ${spec.placeholder}`;
    const def = spec.defaultText === undefined ? "(unset)" : spec.defaultText === "" ? '""' : spec.defaultText;
    return `  ${flag.padEnd(34)} ${envName(spec.name).padEnd(27)} ${def}\n      ${spec.help}\n`;
  });
  return `${USAGE}
Options (flag, environment variable, default). Flags win over variables, variables
over the --config file, the file over the defaults; an empty variable counts as unset.
The file is TOML and names options as their flags, at the top level:
  http-port = 8080
  drain-timeout = "15s"
  trusted-proxies = ["10.0.0.0/8", "127.0.0.1"]
  access-log = false
Durations: 250ms, 5s, 2m or plain seconds (at most 596h). Sizes: bytes, or with KiB/MiB/GiB/KB/MB/GB.
Booleans: --name, --no-name or --name=true|false.
${rows.join("")}
Signals: TERM/INT stop gracefully, a second TERM/INT or QUIT stops fast, HUP reloads,
USR2 starts the child anew beside the running one and switches to it (rolling restart),
USR1, ALRM, VTALRM, PROF, XCPU, XFSZ, IO, PWR and STKFLT are logged and ignored.
Exit codes: 0 clean stop, the child's own code when it exits by itself (128+n when
killed by signal n), 64 usage error, 75 stop forced, 78 configuration or start failure.
`;
}

/** A configuration file is a page of TOML: one past this was named by mistake (a log, /dev/zero). */
const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/**
 * What the --config file (or SLUICE_CONFIG) sets, as resolveConfig takes it; nothing when
 * neither names one. `pipe`: the file read was a pipe (--config <(...)), which gives what it
 * holds only once.
 */
async function readConfigFile(
  flags: OptionSources,
  env: Record<string, string | undefined>,
  runtime: Runtime,
): Promise<{ file: OptionSources; otel: ConfigFile["otel"]; pipe: boolean }> {
  const { value: path, from } = resolveWithSource("config", flags, env);
  if (path === undefined) return { file: {}, otel: {}, pipe: false };
  let read: { bytes: Uint8Array; pipe: boolean };
  try {
    read = await runtime.readFile(path, MAX_CONFIG_FILE_BYTES);
  } catch (error) {
    throw new ConfigError(`Cannot read the configuration file ${path} (${from}): ${readErrorReason(error)}`, {
      cause: error,
    });
  }
  const { options, otel } = loadConfigFile(path, decodeConfigFile(path, read.bytes));
  return { file: options, otel, pipe: read.pipe };
}

/** What `sluice check` prints after its verdict: the stop budget, phase by phase (the README quotes it). */
export function budgetText(config: Config): string {
  const { phases, totalMs } = stopBudget(config);
  const lines = phases.map(([name, ms]) => `  ${name.padEnd(16)} ${formatDuration(ms).padStart(8)}`);
  lines.push(`  ${"total".padEnd(16)} ${formatDuration(totalMs).padStart(8)}`);
  if (config.gracePeriod !== undefined) {
    const spare = config.gracePeriod - totalMs;
    lines.push(`  ${"grace-period".padEnd(16)} ${formatDuration(config.gracePeriod).padStart(8)}  ` +
      (spare >= 0 ? `fits, ${formatDuration(spare)} to spare` : `DOES NOT FIT: ${formatDuration(-spare)} over`));
  } else {
    lines.push("  (no --grace-period given: Kubernetes' default terminationGracePeriodSeconds is 30s)");
  }
  return `Stop budget (shutdown-delay + drain-timeout + close-grace + stop-timeout + flush-timeout):\n${lines.join("\n")}\n`;
}

/** `sluice healthcheck`'s code for "not ready": what Docker's HEALTHCHECK reads as unhealthy. */
const UNHEALTHY = 1;

/** How long `sluice healthcheck` waits for the answer's head (README); well inside Docker's 30 s default. */
const HEALTHCHECK_TIMEOUT_MS = 3000;

/**
 * True for an http:// URL with a host that parses: one that does not (port 99999, "[::1",
 * a space) would fail every check as "not ready", as a typo in the scheme would.
 */
function isHttpUrl(text: string): boolean {
  return /^http:\/\/[^/?#]/.test(text) && URL.canParse(text);
}

/** Asks sluice's /readyz (or `url`); returns why it is not ready, or undefined when it is. */
async function healthcheck(args: readonly string[], env: Record<string, string | undefined>, runtime: Runtime): Promise<string | undefined> {
  const { flags, command } = parseArgs(args);
  if (command.length > 1) throw new UsageError(`Too many arguments for healthcheck: ${command.join(" ")}`);
  let url = command[0];
  // A typo here would read as "not ready" for ever (Docker: unhealthy); say what is wrong instead.
  if (url !== undefined && !isHttpUrl(url)) throw new UsageError(`Invalid healthcheck URL "${url}": expected http://host:port/path`);
  if (url === undefined) {
    // Only --admin-listen matters here: an unrelated bad value must not fail the check.
    const { file } = await readConfigFile(flags, env, runtime);
    // Named where it came from (a variable, the file's line), not as a flag the user may never have passed.
    const { value: admin, from } = resolveWithSource("adminListen", flags, env, { file });
    if (!admin) throw new ConfigError(`Cannot find the admin listener: ${from} is off; pass the URL of /readyz`);
    if (admin.port === 0) {
      throw new ConfigError(`Cannot find the admin listener: ${from} is ${hostPort(admin.hostname, 0)}, which picks its port at start; pass the URL of /readyz`);
    }
    const host = admin.hostname === "0.0.0.0" ? "127.0.0.1" : admin.hostname === "::" ? "::1" : admin.hostname;
    url = `http://${hostPort(host, admin.port)}/readyz`;
  }
  const client = new Http1Client({ connect: runtime.connectTcp });
  try {
    // The upstream client, not the global fetch: HTTP_PROXY set for the app must not divert
    // a request to sluice's own local listener (both runtimes' fetch send 127.0.0.1 to it).
    const response = await client.fetch(url, { signal: AbortSignal.timeout(HEALTHCHECK_TIMEOUT_MS) });
    await response.body?.cancel();
    return response.status === 200 ? undefined : `GET ${url} answered ${response.status}`;
  } catch (error) {
    // The same words on both runtimes (Bun "The operation timed out.", Deno "The operation was
    // aborted due to timeout"), and not the proxy's own "Cannot connect to upstream".
    if (error instanceof Error && error.name === "TimeoutError") return `GET ${url} got no answer within ${formatDuration(HEALTHCHECK_TIMEOUT_MS)}`;
    if (error instanceof UpstreamConnectError) {
      return `GET ${url} failed: nothing accepts connections there (is sluice running, with its admin listener on that address?)`;
    }
    return `GET ${url} failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    client.close();
  }
}

/** Runs the command line; returns the exit code. `signals`: already installed (to serve, or as PID 1: main.ts). */
export async function runCli(runtime: Runtime, signals?: ProcessSignals): Promise<number> {
  const stdout = new LineOutput(runtime, 1);
  // With 2>&1 two outputs would write their batches to one pipe independently, and a partial
  // write of one let the other's bytes in mid-line: one output keeps every line whole.
  const stderr = (await runtime.outputsShared()) ? stdout : new LineOutput(runtime, 2);
  const env = runtime.env();
  const [first, ...rest] = runtime.args;
  /** Set once the service ran: from then on the flush at exit is bounded (and already done). */
  let flushTimeoutMs: number | undefined;
  try {
    switch (subcommandOf(first)) {
      case "version":
        stdout.write(`${versionLine(runtime)}\n`);
        return ExitCode.OK;
      case "help":
        stdout.write(helpText());
        return ExitCode.OK;
      case "healthcheck": {
        const notReady = await healthcheck(rest, env, runtime);
        if (notReady === undefined) return ExitCode.OK;
        stderr.write(`sluice healthcheck: not ready (${notReady})\n`);
        return UNHEALTHY;
      }
      case "check": {
        const { flags, command } = parseArgs(rest);
        const config = resolveConfig(flags, env, command, await readConfigFile(flags, env, runtime));
        try {
          validateConfig(config);
          await prepareFiles(config, runtime);
          validateClientLimits(config, runtime);
        } catch (error) {
          if (error instanceof ConfigError) stdout.write(budgetText(config));
          throw error;
        }
        for (const name of unknownVariables(env)) stderr.write(`sluice: warning: ${unknownVariableText(name)}\n`);
        stdout.write(`Configuration is valid.\n${budgetText(config)}`);
        return ExitCode.OK;
      }
    }
    const { flags, command } = parseArgs(runtime.args);
    if (command.length === 0) throw new UsageError("Missing the command to run: sluice [options] [--] <command> [args...]");
    // `sluice -- "$APP"` with the variable unset or empty: no program has an empty name.
    if (command[0] === "") throw new UsageError(`The command to run is empty (an unset variable?): sluice [options] [--] <command> [args...]`);
    /** A configuration "file" that is a pipe (--config <(...)): the start read all it had. */
    let readOnce: string | undefined;
    /** True until the start's configuration was read. */
    let atStart = true;
    // Run again on every SIGHUP: the same flags and environment, the file as it is now.
    const loadConfig = async (): Promise<Config> => {
      // Read again, a pipe would give nothing, or wait for a writer: every option from the
      // file would silently fall back to its default (--max-request-body to no limit).
      if (readOnce !== undefined) {
        throw new ConfigError(`Cannot read the configuration file ${readOnce} again: it is not a regular file (a pipe is read once, at start); restart sluice to change the configuration`);
      }
      const read = await readConfigFile(flags, env, runtime);
      const config = resolveConfig(flags, env, command, read);
      // What the read itself met, at start: a stat after it (at start, or at every reload) could
      // fall in the moment a tool that replaces the file by unlink and create leaves it missing,
      // take the file for a pipe, and refuse every reload after it until a restart.
      if (read.pipe && atStart) readOnce = config.config;
      atStart = false;
      validateConfig(config);
      validateClientLimits(config, runtime);
      return { ...config, files: await prepareFiles(config, runtime) };
    };
    const config = await loadConfig();
    await setupLogging(stdout, { level: config.logLevel, format: config.logFormat });
    for (const name of unknownVariables(env)) {
      log.lifecycle.warn(unknownVariableText(name), { event: "config.unknown-variable", variable: name });
    }
    for (const source of unappliedClientLimits(config, runtime)) {
      log.lifecycle.warn("{source} is not applied: this runtime's HTTP server has no idle or header timeout", {
        event: "config.unapplied",
        source,
      });
    }
    const service = await Service.create(config, { runtime, env, stdout, stderr, loadConfig, ...(signals ? { signals } : {}) });
    const code = await service.run();
    // What the stop left of --flush-timeout bounds the log flush: a reader that stopped
    // reading must not keep sluice alive past its stop budget; what it has not taken is lost.
    flushTimeoutMs = service.logFlushMs;
    await raceDeadline(Promise.all([flushLogging(stdout), stderr.flush()]), flushTimeoutMs);
    return code;
  } catch (error) {
    if (error instanceof UsageError) {
      stderr.write(`sluice: ${error.message}\nRun "sluice --help" for usage.\n`);
      return ExitCode.USAGE;
    }
    if (error instanceof ConfigError) {
      stderr.write(`sluice: ${error.message}\n`);
      return ExitCode.STARTUP_FAILED;
    }
    stderr.write(`sluice: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return ExitCode.STARTUP_FAILED;
  } finally {
    const flushed = Promise.all([stdout.flush(), stderr.flush()]);
    if (flushTimeoutMs === undefined) await flushed;
  }
}
