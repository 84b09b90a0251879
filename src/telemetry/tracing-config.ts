/**
 * @module Tracing settings from the standard OTEL_* variables as one plain TracingConfig, and
 * the key that says when a setting change needs a new exporter and tracer provider.
 */

import { MAX_DURATION_MS } from "../config-values.ts";

/** The samplers of the OpenTelemetry SDK environment specification that sluice supports. */
export const SAMPLER_NAMES = [
  "always_on",
  "always_off",
  "traceidratio",
  "parentbased_always_on",
  "parentbased_always_off",
  "parentbased_traceidratio",
] as const;

export type SamplerName = (typeof SAMPLER_NAMES)[number];

export interface SamplerConfig {
  /** OTEL_TRACES_SAMPLER. @default "parentbased_always_on" */
  name: SamplerName;
  /** OTEL_TRACES_SAMPLER_ARG, read for the traceidratio samplers only: 0 to 1. @default 1 */
  ratio: number;
}

/** The batch span processor's settings (OTEL_BSP_*). */
export interface BatchConfig {
  /** OTEL_BSP_SCHEDULE_DELAY: longest wait before a partial batch is sent. @default 5000 */
  scheduledDelayMs: number;
  /** OTEL_BSP_EXPORT_TIMEOUT: longest wait for one batch's export. @default 30000 */
  exportTimeoutMs: number;
  /** OTEL_BSP_MAX_QUEUE_SIZE: spans ended beyond this while the queue is full are dropped. @default 2048 */
  maxQueueSize: number;
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE: at most the queue size. @default 512 */
  maxExportBatchSize: number;
}

export interface TracingConfig {
  /**
   * False when OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none or no endpoint is set; then
   * nothing is built and the other fields hold their defaults.
   */
  enabled: boolean;
  /** The full URL spans are POSTed to (".../v1/traces"); "" when disabled. */
  endpoint: string;
  /** Sent with every export, names in lower case; values often hold credentials: never log them. */
  headers: Readonly<Record<string, string>>;
  /** OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT: longest wait for one export request. @default 10000 */
  timeoutMs: number;
  /** OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES. @default "sluice" */
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES without service.name (that is serviceName). */
  resourceAttributes: Readonly<Record<string, string>>;
  sampler: SamplerConfig;
  batch: BatchConfig;
}

export const TRACING_DEFAULTS: TracingConfig = {
  enabled: false,
  endpoint: "",
  headers: {},
  timeoutMs: 10_000,
  serviceName: "sluice",
  resourceAttributes: {},
  sampler: { name: "parentbased_always_on", ratio: 1 },
  batch: { scheduledDelayMs: 5000, exportTimeoutMs: 30_000, maxQueueSize: 2048, maxExportBatchSize: 512 },
};

type Env = Record<string, string | undefined>;

/** Every OTEL_* variable tracingConfigFromEnv reads: the only ones a --config file may set. */
export const TRACING_VARIABLES: readonly string[] = [
  "OTEL_SDK_DISABLED",
  "OTEL_TRACES_EXPORTER",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
  "OTEL_EXPORTER_OTLP_TIMEOUT",
  "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
  "OTEL_SERVICE_NAME",
  "OTEL_RESOURCE_ATTRIBUTES",
  "OTEL_TRACES_SAMPLER",
  "OTEL_TRACES_SAMPLER_ARG",
  "OTEL_BSP_SCHEDULE_DELAY",
  "OTEL_BSP_EXPORT_TIMEOUT",
  "OTEL_BSP_MAX_QUEUE_SIZE",
  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
];

/** An empty variable counts as unset, as for the SLUICE_* variables. */
function read(env: Env, name: string): string | undefined {
  return env[name]?.trim() || undefined;
}

/**
 * An OTEL_* variable that cannot be used. `template` is the message with `{}` where the
 * variable's name goes, so that one set by the --config file can be named by its line instead.
 */
export class TracingVariableError extends RangeError {
  override name = "TracingVariableError";
  constructor(readonly variable: string, private readonly template: string, options?: ErrorOptions) {
    super(template.replace("{}", () => variable), options);
  }

  /** The message naming `source` (`/etc/sluice.toml line 3 (OTEL_...)`) where it named the variable. */
  namedAs(source: string): string {
    return this.template.replace("{}", () => source);
  }
}

function invalid(name: string, expected: string, value: string, cause?: unknown): RangeError {
  return new TracingVariableError(name, `Cannot parse {}: expected ${expected}; current value is "${value}"`, { cause });
}

/**
 * Reads the tracing settings from `env`. Tracing is off unless an endpoint is set (the
 * specification's default of localhost:4318 would make every sluice export somewhere).
 * The other variables are read only when tracing is on: they are often set for the child
 * app too, which may use settings sluice does not support (OTLP/gRPC). Throws a RangeError
 * naming the variable and its value.
 */
export function tracingConfigFromEnv(env: Env): TracingConfig {
  if (!tracingWanted(env)) return structuredClone(TRACING_DEFAULTS);
  checkProtocol(env);
  const resource = parseKeyValues("OTEL_RESOURCE_ATTRIBUTES", read(env, "OTEL_RESOURCE_ATTRIBUTES"));
  const { "service.name": resourceServiceName, ...resourceAttributes } = resource;
  return {
    enabled: true,
    endpoint: tracesEndpoint(env),
    headers: {
      ...lowerCaseNames(parseKeyValues("OTEL_EXPORTER_OTLP_HEADERS", read(env, "OTEL_EXPORTER_OTLP_HEADERS"), true)),
      ...lowerCaseNames(parseKeyValues("OTEL_EXPORTER_OTLP_TRACES_HEADERS", read(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS"), true)),
    },
    timeoutMs: integer(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", 1, "milliseconds") ??
      integer(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 1, "milliseconds") ?? TRACING_DEFAULTS.timeoutMs,
    serviceName: read(env, "OTEL_SERVICE_NAME") ?? resourceServiceName ?? TRACING_DEFAULTS.serviceName,
    resourceAttributes,
    sampler: samplerConfig(env),
    batch: batchConfig(env),
  };
}

/** Only an endpoint turns tracing on; then OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER can turn it off. */
function tracingWanted(env: Env): boolean {
  const endpoint = read(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ?? read(env, "OTEL_EXPORTER_OTLP_ENDPOINT");
  if (endpoint === undefined) return false;
  const disabled = read(env, "OTEL_SDK_DISABLED");
  if (disabled !== undefined && !/^(true|false)$/i.test(disabled)) throw invalid("OTEL_SDK_DISABLED", "true or false", disabled);
  if (disabled?.toLowerCase() === "true") return false;
  const exporters = read(env, "OTEL_TRACES_EXPORTER") ?? "otlp";
  const names = exporters.split(",").map((name) => name.trim());
  if (names.some((name) => name !== "otlp" && name !== "none")) {
    throw invalid("OTEL_TRACES_EXPORTER", "otlp or none (sluice exports OTLP only)", exporters);
  }
  return !names.includes("none");
}

/**
 * sluice sends OTLP/HTTP with JSON bodies. An http/protobuf setting is accepted: OTLP/HTTP
 * receivers (the Collector's among them) take both encodings on the same URL. gRPC is a
 * different port and protocol, so it is refused rather than failing at every export.
 */
function checkProtocol(env: Env): void {
  for (const name of ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
    const value = read(env, name);
    if (value === undefined) continue;
    if (value !== "http/json" && value !== "http/protobuf") {
      throw invalid(name, "http/json or http/protobuf (sluice sends OTLP/HTTP with JSON bodies)", value);
    }
    return; // the traces-specific variable wins over the general one
  }
}

/**
 * The traces endpoint is used as it is; the general one gets "v1/traces" appended to its
 * path (https://opentelemetry.io/docs/specs/otel/protocol/exporter/#endpoint-urls-for-otlphttp).
 */
function tracesEndpoint(env: Env): string {
  const specific = read(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  if (specific !== undefined) {
    parseHttpUrl("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", specific);
    return specific;
  }
  const url = parseHttpUrl("OTEL_EXPORTER_OTLP_ENDPOINT", read(env, "OTEL_EXPORTER_OTLP_ENDPOINT")!);
  url.pathname = `${url.pathname.replace(/\/$/, "")}/v1/traces`;
  return url.href;
}

function parseHttpUrl(name: string, text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (error) {
    throw invalid(name, "an http:// or https:// URL", text, error);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalid(name, "an http:// or https:// URL", text);
  return url;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * `key1=value1,key2=value2` with percent-encoded values (the W3C Baggage form the specification
 * uses for OTEL_RESOURCE_ATTRIBUTES and OTEL_EXPORTER_OTLP_HEADERS). Header values usually hold
 * credentials, so errors about headers name the entry, never the value.
 */
function parseKeyValues(name: string, text: string | undefined, secret = false): Record<string, string> {
  const result: Record<string, string> = {};
  if (text === undefined) return result;
  const shown = secret ? "not shown as it may hold credentials" : `"${text}"`;
  const fail = (entry: number, problem: string, cause?: unknown) =>
    new TracingVariableError(name, `Cannot parse {}: entry ${entry} ${problem}, expected key=value pairs separated by commas; current value is ${shown}`, { cause });
  text.split(",").forEach((item, index) => {
    if (item.trim() === "") return;
    const equals = item.indexOf("=");
    const key = item.slice(0, Math.max(equals, 0)).trim();
    if (equals < 0 || key === "") throw fail(index + 1, "has no key");
    // Not echoed: "Authorization: Basic dXNlcg==" would make the whole credential its key.
    if (secret && !TOKEN.test(key)) throw fail(index + 1, "has a key that is not a header name");
    let value: string;
    try {
      value = decodeURIComponent(item.slice(equals + 1).trim());
    } catch (error) {
      throw fail(index + 1, `("${key}") has a malformed %-escape`, error);
    }
    if (secret && /[\r\n\0]/.test(value)) throw fail(index + 1, `("${key}") has a line break or NUL in its value`);
    result[key] = value;
  });
  return result;
}

function lowerCaseNames(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));
}

/** A whole number of `min` or more; `unit` names what it counts, for the error message. */
function integer(env: Env, name: string, min: number, unit?: string): number | undefined {
  const text = read(env, name);
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(value >= min) || !Number.isSafeInteger(value)) {
    throw invalid(name, `${unit ? `whole ${unit}` : "a whole number"}, ${min} or more`, text);
  }
  // A longer timer fires after 1 ms: every export would time out at once.
  if (unit === "milliseconds" && value > MAX_DURATION_MS) {
    throw invalid(name, `whole milliseconds, at most ${MAX_DURATION_MS} (the longest a timer can wait)`, text);
  }
  return value;
}

function samplerConfig(env: Env): SamplerConfig {
  const text = read(env, "OTEL_TRACES_SAMPLER");
  const name = (text ?? TRACING_DEFAULTS.sampler.name) as SamplerName;
  if (!SAMPLER_NAMES.includes(name)) throw invalid("OTEL_TRACES_SAMPLER", `one of ${SAMPLER_NAMES.join(", ")}`, text!);
  // The argument means something to the ratio samplers only; the specification says to ignore it otherwise.
  const arg = name.endsWith("traceidratio") ? read(env, "OTEL_TRACES_SAMPLER_ARG") : undefined;
  if (arg === undefined) return { name, ratio: TRACING_DEFAULTS.sampler.ratio };
  const ratio = /^(\d+(\.\d*)?|\.\d+)$/.test(arg) ? Number(arg) : NaN;
  if (!(ratio >= 0 && ratio <= 1)) throw invalid("OTEL_TRACES_SAMPLER_ARG", "a sampling ratio from 0 to 1", arg);
  return { name, ratio };
}

function batchConfig(env: Env): BatchConfig {
  const defaults = TRACING_DEFAULTS.batch;
  const maxQueueSize = integer(env, "OTEL_BSP_MAX_QUEUE_SIZE", 1) ?? defaults.maxQueueSize;
  const batchSize = integer(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1);
  if (batchSize !== undefined && batchSize > maxQueueSize) {
    throw new TracingVariableError(
      "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
      `Cannot use {} ${batchSize}: it must not exceed the queue size ` +
        `(OTEL_BSP_MAX_QUEUE_SIZE, ${maxQueueSize}); current value is "${batchSize}"`,
    );
  }
  return {
    scheduledDelayMs: integer(env, "OTEL_BSP_SCHEDULE_DELAY", 0, "milliseconds") ?? defaults.scheduledDelayMs,
    exportTimeoutMs: integer(env, "OTEL_BSP_EXPORT_TIMEOUT", 1, "milliseconds") ?? defaults.exportTimeoutMs,
    maxQueueSize,
    // An unset batch size follows a smaller queue rather than failing on a default.
    maxExportBatchSize: batchSize ?? Math.min(defaults.maxExportBatchSize, maxQueueSize),
  };
}

/**
 * A string equal for two configs exactly when they can share one exporter and tracer
 * provider: the endpoint, headers, export timeout, resource (service name and attributes)
 * and batch settings are fixed when the provider is built. The sampler is not part of it:
 * the provider samples with the sampler each pipeline puts in the span's context
 * (sampler.ts), so a reload that changes only sampling reuses the provider. Contains header
 * values (credentials): compare it, never log it.
 */
export function exporterKey(config: TracingConfig): string {
  const sorted = (record: Readonly<Record<string, string>>) => Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const { batch } = config;
  return JSON.stringify([
    config.enabled,
    config.endpoint,
    sorted(config.headers),
    config.timeoutMs,
    config.serviceName,
    sorted(config.resourceAttributes),
    [batch.scheduledDelayMs, batch.exportTimeoutMs, batch.maxQueueSize, batch.maxExportBatchSize],
  ]);
}
