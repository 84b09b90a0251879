/** @module tracingConfigFromEnv and exporterKey: the OTEL_* variables, their errors, and what needs a new provider. */

import { describe, expect, test } from "bun:test";
import { exporterKey, TRACING_DEFAULTS, tracingConfigFromEnv } from "../../src/telemetry/tracing-config.ts";

const ENDPOINT = { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" };

describe("when tracing is on", () => {
  test("off without an endpoint, with exporter none, or with the SDK disabled", () => {
    expect(tracingConfigFromEnv({})).toEqual(TRACING_DEFAULTS);
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "" }).enabled).toBe(false); // empty counts as unset
    expect(tracingConfigFromEnv({ ...ENDPOINT, OTEL_TRACES_EXPORTER: "none" }).enabled).toBe(false);
    expect(tracingConfigFromEnv({ ...ENDPOINT, OTEL_SDK_DISABLED: "TRUE" }).enabled).toBe(false);
    expect(tracingConfigFromEnv({ ...ENDPOINT, OTEL_SDK_DISABLED: "false", OTEL_TRACES_EXPORTER: "otlp" }).enabled).toBe(true);
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c/v1/traces" }).enabled).toBe(true);
  });

  test("while off, the other variables are not read (they may be meant for the child app)", () => {
    const env = {
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_TRACES_EXPORTER: "otlp,console",
      OTEL_SDK_DISABLED: "no",
      OTEL_TRACES_SAMPLER: "jaeger_remote",
      OTEL_BSP_MAX_QUEUE_SIZE: "x",
    };
    expect(tracingConfigFromEnv(env).enabled).toBe(false);
    expect(() => tracingConfigFromEnv({ ...env, ...ENDPOINT })).toThrow("OTEL_SDK_DISABLED");
  });

  test("the defaults of a config with an endpoint", () => {
    expect(tracingConfigFromEnv(ENDPOINT)).toEqual({
      ...TRACING_DEFAULTS,
      enabled: true,
      endpoint: "http://collector:4318/v1/traces",
    });
  });
});

describe("endpoint", () => {
  test.each([
    ["http://collector:4318", "http://collector:4318/v1/traces"],
    ["http://collector:4318/", "http://collector:4318/v1/traces"],
    ["https://collector:4318/mypath", "https://collector:4318/mypath/v1/traces"],
    ["https://collector:4318/mypath/", "https://collector:4318/mypath/v1/traces"],
    ["http://collector:4318/p?tenant=a", "http://collector:4318/p/v1/traces?tenant=a"],
  ])("OTEL_EXPORTER_OTLP_ENDPOINT=%p sends to %p", (base, url) => {
    expect(tracingConfigFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: base }).endpoint).toBe(url);
  });

  test("the traces endpoint is used as it is, and wins over the general one", () => {
    const env = { ...ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://other:4318/custom" };
    expect(tracingConfigFromEnv(env).endpoint).toBe("http://other:4318/custom");
  });
});

describe("exporter settings", () => {
  test("headers: percent-decoded, lower-cased names, the traces variable overriding per name", () => {
    const config = tracingConfigFromEnv({
      ...ENDPOINT,
      OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Basic%20dXNlcjpwdw==, x-tenant = a ,x-both=general",
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: "X-Both=traces",
    });
    expect(config.headers).toEqual({ authorization: "Basic dXNlcjpwdw==", "x-tenant": "a", "x-both": "traces" });
  });

  test("timeout: the traces variable wins; protocol http/protobuf is accepted (sent as JSON)", () => {
    const env = { ...ENDPOINT, OTEL_EXPORTER_OTLP_TIMEOUT: "2000", OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" };
    expect(tracingConfigFromEnv(env).timeoutMs).toBe(2000);
    expect(tracingConfigFromEnv({ ...env, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "500" }).timeoutMs).toBe(500);
  });

  test("service name: OTEL_SERVICE_NAME, else service.name among the resource attributes, else sluice", () => {
    const attributes = { ...ENDPOINT, OTEL_RESOURCE_ATTRIBUTES: "service.name=from-attrs,deployment.environment=prod%2Ceu,team=edge" };
    expect(tracingConfigFromEnv(attributes)).toMatchObject({
      serviceName: "from-attrs",
      resourceAttributes: { "deployment.environment": "prod,eu", team: "edge" },
    });
    expect(tracingConfigFromEnv({ ...attributes, OTEL_SERVICE_NAME: "web" }).serviceName).toBe("web");
    expect(tracingConfigFromEnv(ENDPOINT).serviceName).toBe("sluice");
  });

  test("batch settings, and a batch size that follows a smaller queue when unset", () => {
    const env = { ...ENDPOINT, OTEL_BSP_SCHEDULE_DELAY: "0", OTEL_BSP_EXPORT_TIMEOUT: "1000", OTEL_BSP_MAX_QUEUE_SIZE: "100" };
    expect(tracingConfigFromEnv(env).batch).toEqual({ scheduledDelayMs: 0, exportTimeoutMs: 1000, maxQueueSize: 100, maxExportBatchSize: 100 });
    expect(tracingConfigFromEnv({ ...env, OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "10" }).batch.maxExportBatchSize).toBe(10);
  });
});

describe("sampler", () => {
  test.each([
    ["always_on", undefined, 1],
    ["always_off", "0.5", 1], // the argument is ignored by samplers without a ratio
    ["traceidratio", "0.25", 0.25],
    ["parentbased_always_on", undefined, 1],
    ["parentbased_always_off", undefined, 1],
    ["parentbased_traceidratio", "0", 0],
    ["parentbased_traceidratio", undefined, 1],
    ["traceidratio", ".5", 0.5],
  ])("%p with argument %p has ratio %p", (name, arg, ratio) => {
    const env = { ...ENDPOINT, OTEL_TRACES_SAMPLER: name, ...(arg === undefined ? {} : { OTEL_TRACES_SAMPLER_ARG: arg }) };
    expect(tracingConfigFromEnv(env).sampler).toEqual({ name: name as never, ratio });
  });

  test("the default is parentbased_always_on", () => {
    expect(tracingConfigFromEnv(ENDPOINT).sampler).toEqual({ name: "parentbased_always_on", ratio: 1 });
  });
});

describe("errors name the variable and the value", () => {
  const cases: [Record<string, string>, string][] = [
    [{ OTEL_TRACES_EXPORTER: "zipkin" }, 'Cannot parse OTEL_TRACES_EXPORTER: expected otlp or none (sluice exports OTLP only); current value is "zipkin"'],
    [{ OTEL_TRACES_EXPORTER: "otlp,console" }, 'current value is "otlp,console"'],
    [{ OTEL_SDK_DISABLED: "maybe" }, 'Cannot parse OTEL_SDK_DISABLED: expected true or false; current value is "maybe"'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }, 'Cannot parse OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL; current value is "collector:4318"'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "not a url" }, 'Cannot parse OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected an http:// or https:// URL; current value is "not a url"'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }, 'Cannot parse OTEL_EXPORTER_OTLP_PROTOCOL: expected http/json or http/protobuf (sluice sends OTLP/HTTP with JSON bodies); current value is "grpc"'],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: "10s" }, 'Cannot parse OTEL_EXPORTER_OTLP_TIMEOUT: expected whole milliseconds, 1 or more; current value is "10s"'],
    [{ OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: "0" }, 'Cannot parse OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: expected whole milliseconds, 1 or more; current value is "0"'],
    [{ OTEL_TRACES_SAMPLER: "jaeger_remote" }, 'Cannot parse OTEL_TRACES_SAMPLER: expected one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio; current value is "jaeger_remote"'],
    [{ OTEL_TRACES_SAMPLER: "traceidratio", OTEL_TRACES_SAMPLER_ARG: "1.5" }, 'Cannot parse OTEL_TRACES_SAMPLER_ARG: expected a sampling ratio from 0 to 1; current value is "1.5"'],
    [{ OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "half" }, 'current value is "half"'],
    [{ OTEL_EXPORTER_OTLP_TIMEOUT: "2147483648" }, 'Cannot parse OTEL_EXPORTER_OTLP_TIMEOUT: expected whole milliseconds, at most 2147483647 (the longest a timer can wait); current value is "2147483648"'],
    [{ OTEL_BSP_SCHEDULE_DELAY: "2592000000" }, 'Cannot parse OTEL_BSP_SCHEDULE_DELAY: expected whole milliseconds, at most 2147483647'],
    [{ OTEL_BSP_EXPORT_TIMEOUT: "9999999999" }, 'Cannot parse OTEL_BSP_EXPORT_TIMEOUT: expected whole milliseconds, at most 2147483647'],
    [{ OTEL_BSP_SCHEDULE_DELAY: "-1" }, 'Cannot parse OTEL_BSP_SCHEDULE_DELAY: expected whole milliseconds, 0 or more; current value is "-1"'],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: "0" }, 'Cannot parse OTEL_BSP_MAX_QUEUE_SIZE: expected a whole number, 1 or more; current value is "0"'],
    [{ OTEL_BSP_MAX_QUEUE_SIZE: "100", OTEL_BSP_MAX_EXPORT_BATCH_SIZE: "200" }, 'Cannot use OTEL_BSP_MAX_EXPORT_BATCH_SIZE 200: it must not exceed the queue size (OTEL_BSP_MAX_QUEUE_SIZE, 100); current value is "200"'],
    [{ OTEL_RESOURCE_ATTRIBUTES: "team=edge,=x" }, 'Cannot parse OTEL_RESOURCE_ATTRIBUTES: entry 2 has no key, expected key=value pairs separated by commas; current value is "team=edge,=x"'],
    [{ OTEL_RESOURCE_ATTRIBUTES: "team=%E0%A4%A" }, 'entry 1 ("team") has a malformed %-escape'],
  ];
  const titled = cases.map(([env, message]) => [Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" "), env, message] as const);
  test.each(titled)("%s", (_, env, message) => {
    expect(() => tracingConfigFromEnv({ ...ENDPOINT, ...env })).toThrow(message);
  });

  test("a bad header entry is named, its value is not shown (credentials)", () => {
    const attempt = (headers: string) => () => tracingConfigFromEnv({ ...ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS: headers });
    expect(attempt("x-api-key=s3cret,justatoken")).toThrow(
      "Cannot parse OTEL_EXPORTER_OTLP_HEADERS: entry 2 has no key, expected key=value pairs separated by commas; current value is not shown as it may hold credentials",
    );
    expect(attempt("authorization: Basic s3cret==")).toThrow("entry 1 has a key that is not a header name");
    expect(attempt("x-a=one%0Atwo")).toThrow('entry 1 ("x-a") has a line break or NUL in its value');
    for (const headers of ["x-api-key=s3cret,justatoken", "authorization: Basic s3cret=="]) {
      expect(() => attempt(headers)()).not.toThrow("s3cret");
    }
  });
});

describe("exporterKey", () => {
  const base = tracingConfigFromEnv({
    ...ENDPOINT,
    OTEL_EXPORTER_OTLP_HEADERS: "a=1,b=2",
    OTEL_RESOURCE_ATTRIBUTES: "x=1,y=2",
  });

  test("the same settings in another order give the same key", () => {
    const reordered = tracingConfigFromEnv({ ...ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS: "b=2,a=1", OTEL_RESOURCE_ATTRIBUTES: "y=2,x=1" });
    expect(exporterKey(reordered)).toBe(exporterKey(base));
  });

  test("the sampler is not part of it: it is swapped without a new provider", () => {
    const sampled = tracingConfigFromEnv({
      ...ENDPOINT,
      OTEL_EXPORTER_OTLP_HEADERS: "a=1,b=2",
      OTEL_RESOURCE_ATTRIBUTES: "x=1,y=2",
      OTEL_TRACES_SAMPLER: "traceidratio",
      OTEL_TRACES_SAMPLER_ARG: "0.1",
    });
    expect(exporterKey(sampled)).toBe(exporterKey(base));
  });

  test.each([
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"],
    ["OTEL_EXPORTER_OTLP_HEADERS", "a=1,b=3"],
    ["OTEL_EXPORTER_OTLP_TIMEOUT", "5000"],
    ["OTEL_SERVICE_NAME", "web"],
    ["OTEL_RESOURCE_ATTRIBUTES", "x=1,y=3"],
    ["OTEL_BSP_SCHEDULE_DELAY", "100"],
    ["OTEL_BSP_EXPORT_TIMEOUT", "100"],
    ["OTEL_BSP_MAX_QUEUE_SIZE", "4096"],
    ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"],
  ])("changing %p changes it", (name, value) => {
    const changed = tracingConfigFromEnv({
      ...ENDPOINT,
      OTEL_EXPORTER_OTLP_HEADERS: "a=1,b=2",
      OTEL_RESOURCE_ATTRIBUTES: "x=1,y=2",
      [name]: value,
    });
    expect(exporterKey(changed)).not.toBe(exporterKey(base));
  });
});
