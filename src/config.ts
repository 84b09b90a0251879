/**
 * @module Every option in one table: flag, SLUICE_* variable, config-file key, default, parser,
 * help. The only reader of the environment.
 */

import {
  type Cidr,
  formatDuration,
  type ListenAddress,
  parseBoolean,
  parseChoice,
  parseCidrList,
  parseDuration,
  parseGiveUpAfter,
  parseHost,
  LISTEN_ADDRESS_EXPECTED,
  parseListenAddress,
  parseNonNegativeInteger,
  parsePort,
  parseSize,
  type ValueParser,
} from "./config-values.ts";
import type { PreparedFiles } from "./files/prepare-files.ts";
import { type TracingConfig, tracingConfigFromEnv, TracingVariableError } from "./telemetry/tracing-config.ts";

interface OptionSpec<T> {
  /** The flag without dashes; the variable is SLUICE_ + its upper-snake form. */
  name: string;
  /** Default as the user would write it; undefined means "unset". */
  defaultText: string | undefined;
  parse: ValueParser<T>;
  /** What the value looks like, for --help. */
  placeholder: string;
  help: string;
  /** basecamp/thruster's variable for the same setting, read as a fallback (see thrusterSource). */
  thruster?: ThrusterVariable;
  /** Takes a comma-separated list: the only options a --config file may give an array. */
  list?: true;
}

/** A thruster variable (without its optional THRUSTER_ prefix) and how its value reads as sluice's. */
interface ThrusterVariable {
  name: string;
  /** thruster's value as sluice would write it; throws a RangeError when thruster could not read it either. */
  convert?: (text: string) => string;
}

function option<T>(
  name: string,
  defaultText: string,
  parse: ValueParser<T>,
  placeholder: string,
  help: string,
): OptionSpec<T> {
  return { name, defaultText, parse, placeholder, help };
}

function optional<T>(name: string, parse: ValueParser<T>, placeholder: string, help: string): OptionSpec<T | undefined> {
  return { name, defaultText: undefined, parse, placeholder, help };
}

/** The same option, taking a comma-separated list. */
function list<T>(spec: OptionSpec<T>): OptionSpec<T> {
  return { ...spec, list: true };
}

/** The same option, with thruster's variable as a fallback. */
function thruster<T>(spec: OptionSpec<T>, name: string, convert?: (text: string) => string): OptionSpec<T> {
  return { ...spec, thruster: { name, ...(convert ? { convert } : {}) } };
}

/** Go's strconv.ParseBool, which thruster uses for its booleans. */
function goBool(text: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(text)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(text)) return false;
  throw new RangeError("expected a boolean as thruster reads it (Go's ParseBool): 1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False");
}

/** A thruster boolean as sluice writes it: "T" and "F" too, "yes" and "on" not (thruster ignores them). */
const goBoolText = (text: string): string => String(goBool(text));

/**
 * A thruster number (a port, bytes, seconds) as Go's strconv.Atoi reads it, which thruster
 * uses for them: "+81" too, "512MB", "30s" or "1.5" not. sluice's own units would take an
 * app's CACHE_SIZE=512MB as a 512 MB cache, where thruster ignores it.
 */
function goIntText(text: string): string {
  if (!/^[+-]?\d+$/.test(text)) throw new RangeError("expected a whole number as thruster reads it (Go's Atoi), without a unit");
  return text.replace(/^\+/, "");
}

const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const;
const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

const parseAdminListen: ValueParser<ListenAddress | undefined> = (text) => {
  if (text.trim() === "off") return undefined;
  try {
    return parseListenAddress(text);
  } catch (error) {
    // `admin-listen = false` in the file, or a port alone: say that "off" is the way to turn it off.
    if (error instanceof RangeError && error.message === LISTEN_ADDRESS_EXPECTED) throw new RangeError("expected host:port, [ipv6]:port, :port or off", { cause: error });
    throw error;
  }
};

const parseConfigPath: ValueParser<string> = (text) => {
  if (text.trim() === "") throw new RangeError("expected the path of a TOML file");
  return text;
};

const parsePath: ValueParser<string> = (text) => {
  if (text.trim() === "") throw new RangeError("expected a path");
  return text.trim();
};

/** Comma-separated paths; empty means none. */
const parsePathList: ValueParser<string[]> = (text) => text.split(",").map((path) => path.trim()).filter((path) => path !== "");

const parseReadyPath: ValueParser<string> = (text) => {
  const path = text.trim();
  if (!path.startsWith("/")) throw new RangeError("expected a path starting with /");
  // What a request line cannot carry ("/up " from a variable) would fail every probe, for the
  // whole --ready-timeout, after `sluice check` had said the configuration was valid.
  if (/[^!-~\u0080-\uffff]|#/.test(path)) throw new RangeError("expected a path starting with /, without spaces, control characters or a #fragment");
  return path;
};

/** The option table: --help, the README and the parser are all generated from it. */
export const OPTIONS = {
  config: optional("config", parseConfigPath, "PATH", "TOML file of options named as their flags (http-port = 8080); flags and variables win over it"),
  httpHost: option("http-host", "0.0.0.0", parseHost, "HOST", "Address sluice serves HTTP on"),
  httpPort: thruster(option("http-port", "8080", parsePort, "PORT", "Port sluice serves HTTP on (0 picks a free one)"), "HTTP_PORT", goIntText),
  targetHost: option("target-host", "127.0.0.1", parseHost, "HOST", "Address the child listens on"),
  targetPort: thruster(option("target-port", "3000", parsePort, "PORT", "Port the child listens on; passed to it as PORT"), "TARGET_PORT", goIntText),
  adminListen: option("admin-listen", "127.0.0.1:9000", parseAdminListen, "HOST:PORT|off", "Serves /livez, /readyz and /metrics"),
  readyPath: optional("ready-path", parseReadyPath, "PATH", "Child is ready when GET PATH answers 2xx (default: when its port accepts TCP)"),
  readyTimeout: option("ready-timeout", "60s", parseGiveUpAfter, "DURATION", "Longest wait for the child to become ready before giving up"),
  holdTimeout: option("hold-timeout", "30s", parseDuration, "DURATION", "Requests arriving before the child is ready wait this long, then get 503"),
  maxHeldRequests: option("max-held-requests", "1000", parseNonNegativeInteger, "N", "Requests held at once while the child is not ready; more get 503"),
  upstreamTimeout: option("upstream-timeout", "60s", parseGiveUpAfter, "DURATION", "Longest wait for the child's response headers before answering 504, from the end of the request body (or since the child last took part of it)"),
  maxRequestBody: thruster(option("max-request-body", "0", parseSize, "SIZE", "Largest request body accepted, else 413 (0 means no limit)"), "MAX_REQUEST_BODY", goIntText),
  trustedProxies: thruster(
    list(option("trusted-proxies", "", parseCidrList, "CIDRS", "Peers whose X-Forwarded-* headers are trusted and extended")),
    "FORWARD_HEADERS", // true: every peer's headers are kept, as thruster does
    (text) => (goBool(text) ? "0.0.0.0/0,::/0" : ""),
  ),
  compression: thruster(
    option("compression", "true", parseBoolean, "BOOL", "Compress responses (zstd, br or gzip, as the client accepts) of text-like types"),
    "GZIP_COMPRESSION_ENABLED",
    goBoolText,
  ),
  compressionMinSize: option("compression-min-size", "1KiB", parseSize, "SIZE", "Responses of known length below this are sent uncompressed"),
  compressionDisableOnAuth: thruster(
    option("compression-disable-on-auth", "false", parseBoolean, "BOOL", "BREACH guard: no compression for requests with credentials or personal responses"),
    "GZIP_COMPRESSION_DISABLE_ON_AUTH",
    goBoolText,
  ),
  cacheSize: thruster(option("cache-size", "64MiB", parseSize, "SIZE", "Memory for cached public responses (0 turns the cache off)"), "CACHE_SIZE", goIntText),
  maxCacheItemSize: thruster(
    option("max-cache-item-size", "1MiB", parseSize, "SIZE", "Largest response body the cache stores; larger ones stream through unstored"),
    "MAX_CACHE_ITEM_SIZE",
    goIntText,
  ),
  xSendfile: thruster(
    option("x-sendfile", "true", parseBoolean, "BOOL", "Send the file an app response names in X-Sendfile (the app is told with X-Sendfile-Type)"),
    "X_SENDFILE_ENABLED",
    goBoolText,
  ),
  xSendfileDirs: list(option("x-sendfile-dirs", ".", parsePathList, "PATHS", "Directories X-Sendfile may send from, comma-separated; other paths are refused")),
  publicDir: optional("public-dir", parsePath, "PATH", "Answer GET/HEAD for the files of this directory directly; other paths go to the app"),
  badGatewayPage: thruster(option("bad-gateway-page", "public/502.html", parsePath, "PATH", "HTML page for sluice's own 502 answers (a default path only when it exists)"), "BAD_GATEWAY_PAGE"),
  unavailablePage: option("unavailable-page", "public/503.html", parsePath, "PATH", "HTML page for sluice's own 503 answers (a default path only when it exists)"),
  gatewayTimeoutPage: option("gateway-timeout-page", "public/504.html", parsePath, "PATH", "HTML page for sluice's own 504 answers (a default path only when it exists)"),
  idleTimeout: thruster(
    option("idle-timeout", "60s", parseDuration, "DURATION", "Close a client connection idle this long between requests (0: never)"),
    "HTTP_IDLE_TIMEOUT",
    goIntText,
  ),
  headerTimeout: option("header-timeout", "10s", parseDuration, "DURATION", "Close a new connection whose request headers are not in after this long (0: never)"),
  bodyTimeout: option("body-timeout", "30s", parseDuration, "DURATION", "Longest pause while a request body is read, then 408 (0: never)"),
  maxHeaderSize: option("max-header-size", "16KiB", parseSize, "SIZE", "Largest request head (request line and headers), else 431 (0: the runtime's limit)"),
  maxHeaderCount: option("max-header-count", "100", parseNonNegativeInteger, "N", "Most request header fields accepted, else 431 (0: the runtime's limit)"),
  accessLog: thruster(option("access-log", "true", parseBoolean, "BOOL", "Log one record per request"), "LOG_REQUESTS", goBoolText),
  shutdownDelay: option("shutdown-delay", "5s", parseDuration, "DURATION", "At stop, keep serving this long with /readyz 503 before closing the listener"),
  drainTimeout: thruster(option("drain-timeout", "15s", parseDuration, "DURATION", "At stop (and for a rolling restart's old child), longest wait for requests in flight before aborting them"), "HTTP_DRAIN_TIMEOUT", goIntText),
  stopTimeout: option("stop-timeout", "5s", parseDuration, "DURATION", "At stop (and for a rolling restart's old child), longest wait for the child to exit after --stop-signal before SIGKILL"),
  stopSignal: option("stop-signal", "SIGTERM", parseChoice(STOP_SIGNALS), "SIGNAL", "Signal sent to the child's process group to stop it"),
  flushTimeout: option("flush-timeout", "2s", parseDuration, "DURATION", "At stop, longest wait for logs and traces to flush"),
  gracePeriod: optional("grace-period", parseDuration, "DURATION", "The orchestrator's stop deadline; refuse to start when the stop budget exceeds it"),
  restart: option("restart", "never", parseChoice(["never", "on-failure", "always"] as const), "POLICY", "Restart the child when it exits: never, on-failure or always"),
  restartMaxDelay: option("restart-max-delay", "10s", parseDuration, "DURATION", "Cap of the exponential backoff between restarts"),
  logLevel: thruster(
    option("log-level", "info", parseChoice(LOG_LEVELS), "LEVEL", "Lowest level logged: trace, debug, info, warning, error or fatal"),
    "DEBUG", // thruster logs at info unless DEBUG is true
    (text) => (goBool(text) ? "debug" : "info"),
  ),
  logFormat: option("log-format", "json", parseChoice(["json", "text"] as const), "FORMAT", "json (one JSON object per line) or text"),
} as const;

export type OptionKey = keyof typeof OPTIONS;

/** Options as parsed values; `command` is the child's argv. */
export type Config = { -readonly [K in OptionKey]: ReturnType<(typeof OPTIONS)[K]["parse"]> } & {
  command: string[];
  /** From the standard OTEL_* variables (see telemetry/tracing-config.ts). */
  tracing: TracingConfig;
  /** Where each option's value came from, for errors that involve several options. */
  sources?: Partial<Record<OptionKey, string>>;
  /** The directories and error pages the options name, read by prepareFiles (files/prepare-files.ts). */
  files?: PreparedFiles;
};

export type { Cidr, ListenAddress };

/** A configuration that cannot be used; `subject` names the flag, variable or rule at fault. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export function envName(optionName: string): string {
  return `SLUICE_${optionName.toUpperCase().replaceAll("-", "_")}`;
}

const OPTION_VARIABLES: ReadonlySet<string> = new Set(Object.values(OPTIONS).map((spec) => envName(spec.name)));

/**
 * The SLUICE_* variables set (not empty) that name no option, sorted: a misspelt one would
 * leave its option at the default without a word. Warned about, not refused: the app may
 * read a variable of that name itself.
 */
export function unknownVariables(env: Record<string, string | undefined>): string[] {
  return Object.keys(env).filter((name) => name.startsWith("SLUICE_") && env[name] && !OPTION_VARIABLES.has(name)).sort();
}

/** The words for an unknown SLUICE_* variable, at start and in `sluice check`. */
export function unknownVariableText(name: string): string {
  const near = nearestOptionName(name.slice("SLUICE_".length));
  const meant = near === undefined ? "" : `did you mean ${envName(near)}? `;
  return `${name} is set but names no option of sluice (${meant}sluice --help lists them); it is ignored`;
}

const KEYS_BY_NAME = new Map<string, OptionKey>(
  (Object.keys(OPTIONS) as OptionKey[]).map((key) => [OPTIONS[key].name, key]),
);

/**
 * The option name a misspelt flag, file key or variable most likely meant: the same name in
 * another case, with underscores or as its variable (HTTP_PORT, SLUICE_HTTP_PORT), or the one
 * name within a few typed letters of it (drain-timout, drian-timeout); undefined when none is
 * near or two are as near.
 */
export function nearestOptionName(text: string): string | undefined {
  const name = text.toLowerCase().replaceAll("_", "-").replace(/^-+/, "").replace(/^sluice-/, "");
  if (KEYS_BY_NAME.has(name)) return name;
  // One typo per four letters, at most three: "port" suggests nothing, "drian-timeout" drain-timeout.
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 4)));
  let best: string | undefined;
  let bestDistance = limit + 1;
  let tied = false;
  for (const candidate of KEYS_BY_NAME.keys()) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance, tied] = [candidate, distance, false];
    else if (distance === bestDistance) tied = true;
  }
  return tied ? undefined : best;
}

/** Letters inserted, deleted, replaced or two neighbours swapped to turn `a` into `b` (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/** True for the options that take a comma-separated list (--trusted-proxies, --x-sendfile-dirs). */
export function isListOption(key: OptionKey): boolean {
  return (OPTIONS[key] as OptionSpec<unknown>).list === true;
}

/** The option a flag or config-file key names (`drain-timeout` -> drainTimeout), if any. */
export function optionKeyOf(name: string): OptionKey | undefined {
  return KEYS_BY_NAME.get(name);
}

/** A value's text and where it came from ("--flag", "SLUICE_X", `<path> line <n> (<key>)`), for error messages. */
export interface SourcedText {
  text: string;
  from: string;
}

/** Where each option's text came from, for error messages. */
export type OptionSources = Partial<Record<OptionKey, SourcedText>>;

export interface ResolveOptions {
  /**
   * What the --config file sets (see loadConfigFile), below flags and variables.
   * @default {}
   */
  file?: OptionSources;
  /** OTEL_* variables the --config file sets, and where; the environment's own win over them. */
  otel?: Record<string, SourcedText>;
}

/**
 * Resolves every option from flags (already split by the CLI), then the environment, then
 * the config file, then the defaults. An empty variable counts as unset. Throws ConfigError
 * naming the source.
 */
export function resolveConfig(
  flags: OptionSources,
  env: Record<string, string | undefined>,
  command: string[],
  options: ResolveOptions = {},
): Config {
  const sources: Partial<Record<OptionKey, string>> = {};
  const config: Record<string, unknown> = { command, sources };
  for (const key of Object.keys(OPTIONS) as OptionKey[]) {
    const { value, from } = resolveWithSource(key, flags, env, options);
    if (value !== undefined) config[key] = value;
    if (from !== undefined) sources[key] = from;
  }
  const set = withoutEmpty(env);
  const fromFile = Object.fromEntries(Object.entries(options.otel ?? {}).map(([name, { text }]) => [name, text]));
  try {
    config.tracing = tracingConfigFromEnv({ ...fromFile, ...set });
  } catch (error) {
    // One the file set is named by its line, as the file's options are, not as a variable nobody set.
    const source = error instanceof TracingVariableError && set[error.variable] === undefined ? options.otel?.[error.variable]?.from : undefined;
    const message = source !== undefined ? (error as TracingVariableError).namedAs(source) : error instanceof Error ? error.message : String(error);
    throw new ConfigError(message, { cause: error });
  }
  return config as Config;
}

/**
 * One option resolved the way resolveConfig does, ignoring every other one: its value and
 * where it came from ("--flag", "SLUICE_X", the file's key, the default).
 */
export function resolveWithSource<K extends OptionKey>(
  key: K,
  flags: OptionSources,
  env: Record<string, string | undefined>,
  { file = {} }: ResolveOptions = {},
): { value: Config[K]; from: string | undefined } {
  const spec = OPTIONS[key] as OptionSpec<unknown>;
  const variable = envName(spec.name);
  const envText = env[variable];
  const source = flags[key] ??
    (envText ? { text: envText, from: variable } : undefined) ??
    file[key] ??
    thrusterSource(spec, env) ??
    (spec.defaultText !== undefined ? { text: spec.defaultText, from: `the default of --${spec.name}` } : undefined);
  if (source === undefined) return { value: undefined as Config[K], from: undefined };
  try {
    return { value: spec.parse(source.text) as Config[K], from: source.from };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // Kubernetes injects SLUICE_HTTP_PORT=tcp://10.0.0.1:8080 into every pod of the namespace
    // when a Service is named sluice-http: the fix is in the pod spec, not in the value.
    const serviceLink = source.from.startsWith("SLUICE_") && /^tcp:\/\/[^/]+:\d+$/.test(source.text)
      ? " (a Kubernetes service link, from a Service whose name makes this variable: set enableServiceLinks: false in the pod spec)"
      : "";
    throw new ConfigError(`Cannot parse ${source.from}: ${reason}; current value is "${source.text}"${serviceLink}`, { cause: error });
  }
}

/**
 * thruster's variable for an option, so that sluice can replace `thrust` with nothing else
 * changed: THRUSTER_<NAME> first, then <NAME>, as thruster reads them, below sluice's own
 * flags, variables and file. An unprefixed variable may belong to the app (DEBUG=express:*),
 * so a value thruster could not read either is ignored; a THRUSTER_ one is an error.
 */
function thrusterSource(spec: OptionSpec<unknown>, env: Record<string, string | undefined>) {
  const variable = spec.thruster;
  if (variable === undefined) return undefined;
  const prefixed = `THRUSTER_${variable.name}`;
  for (const name of [prefixed, variable.name]) {
    const text = env[name];
    if (!text) continue;
    let converted: string;
    try {
      converted = variable.convert ? variable.convert(text) : text;
    } catch (error) {
      if (name !== prefixed) continue;
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConfigError(`Cannot parse ${name}: ${reason}; current value is "${text}"`, { cause: error });
    }
    if (name === prefixed) return { text: converted, from: name }; // a bad value fails to parse, naming it
    if (readable(spec, converted)) return { text: converted, from: name };
  }
  return undefined;
}

function readable(spec: OptionSpec<unknown>, text: string): boolean {
  try {
    spec.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * After the drain deadline, how long what was aborted gets to finish that before the remaining
 * connections are cut (requests still waiting for the app send their 503, WebSockets close
 * with 1001, event streams end cleanly): a fixed part of the stop budget.
 */
export const CLOSE_GRACE_MS = 500;

/** The stop budget: every phase that can run after SIGTERM, in order. */
export function stopBudget(config: Config): { phases: [string, number][]; totalMs: number } {
  const phases: [string, number][] = [
    ["shutdown-delay", config.shutdownDelay],
    ["drain-timeout", config.drainTimeout],
    ["close-grace", CLOSE_GRACE_MS],
    ["stop-timeout", config.stopTimeout],
    ["flush-timeout", config.flushTimeout],
  ];
  return { phases, totalMs: phases.reduce((sum, [, ms]) => sum + ms, 0) };
}

/**
 * Where an option's value came from ("--flag", "SLUICE_X", the file's line, the default), for
 * messages: the file's line, not a flag the user never passed. A config built without sources
 * (tests) names the flag.
 */
export function optionSource(config: Pick<Config, "sources">, key: OptionKey): string {
  return config.sources?.[key] ?? `--${OPTIONS[key].name}`;
}

/** Rules that involve more than one option. */
export function validateConfig(config: Config): void {
  const { totalMs } = stopBudget(config);
  if (config.gracePeriod !== undefined && totalMs > config.gracePeriod) {
    throw new ConfigError(
      `The stop budget of ${formatDuration(totalMs)} (shutdown-delay + drain-timeout + close-grace + stop-timeout + flush-timeout) ` +
        `exceeds ${optionSource(config, "gracePeriod")} ${formatDuration(config.gracePeriod)}: lower a timeout or raise the grace period (run "sluice check")`,
    );
  }
  const source = (key: OptionKey): string => optionSource(config, key);
  if (config.adminListen && config.adminListen.port !== 0 && config.adminListen.port === config.httpPort) {
    throw new ConfigError(`${source("adminListen")} and ${source("httpPort")} both use port ${config.httpPort}`);
  }
  if (config.adminListen && config.targetPort !== 0 && config.adminListen.port === config.targetPort) {
    throw new ConfigError(`${source("adminListen")} and ${source("targetPort")} both use port ${config.targetPort}: the child needs a port of its own`);
  }
  // First: with --http-port 0 too, "both 0" would blame a valid --http-port.
  if (config.targetPort === 0) {
    throw new ConfigError(`Cannot use ${source("targetPort")}: the child needs a known port; current value is "0"`);
  }
  if (config.httpPort === config.targetPort) {
    throw new ConfigError(`${source("httpPort")} and ${source("targetPort")} are both ${config.httpPort}: the child needs a port of its own`);
  }
}

/** Variables meant for sluice alone: systemd's notify socket, watchdog and socket activation. */
const SLUICE_ONLY_VARIABLES = /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|LISTEN_PID|LISTEN_FDS|LISTEN_FDNAMES)$/;

/** The child's environment: sluice's own, less what belongs to sluice alone, with PORT set. */
export function childEnvironment(env: Record<string, string | undefined>, port: number): Record<string, string> {
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !SLUICE_ONLY_VARIABLES.test(name)) childEnv[name] = value;
  }
  childEnv.PORT = String(port);
  return childEnv;
}

/**
 * Options a reload does not change in a running sluice (its listeners, where its child
 * listens): it reports them as pending a restart and keeps the running values. (The child's
 * readiness and restart settings apply to the next child started or exit met: Supervisor.reconfigure.)
 */
export const RESTART_OPTIONS: ReadonlySet<OptionKey> = new Set<OptionKey>([
  "httpHost",
  "httpPort",
  "adminListen",
  "targetHost",
  "targetPort",
  "idleTimeout",
  "headerTimeout",
  "config",
]);

/** The listener's connection timeouts: a runtime without them (Deno) applies neither, at start or after a restart. */
export const CONNECTION_TIMEOUT_OPTIONS: ReadonlySet<OptionKey> = new Set<OptionKey>(["idleTimeout", "headerTimeout"]);

/**
 * Options the response cache's contents depend on: its limits, and those of the steps after
 * it in the pipeline (src/app.ts), which made what it holds. A reload that changes one
 * starts an empty cache: an entry compressed before `compression = false` would still be
 * served compressed, and one stored while compression was off (without Vary:
 * Accept-Encoding) would answer every client uncompressed once it is on, each until its
 * max-age (a year for fingerprinted files).
 */
export const RESPONSE_CACHE_OPTIONS: ReadonlySet<OptionKey> = new Set<OptionKey>([
  "cacheSize",
  "maxCacheItemSize",
  "compression",
  "compressionMinSize",
  "compressionDisableOnAuth",
  "xSendfile",
  "xSendfileDirs",
  "publicDir",
]);

/** The options whose values differ, by their flag names. */
export function changedOptions(before: Config, after: Config): OptionKey[] {
  return (Object.keys(OPTIONS) as OptionKey[]).filter((key) => comparable(before[key]) !== comparable(after[key]));
}

/** A value as comparable text; a CIDR's address is a bigint, which JSON.stringify throws on. */
function comparable(value: unknown): string | undefined {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item));
}

/**
 * The set variables only: an empty one counts as unset, so it must not hide the file's. So
 * does one of only spaces, which the OTEL_* readers take as unset: it would hide the file's
 * endpoint, and turn tracing off silently.
 */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const set: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value?.trim()) set[name] = value;
  return set;
}
