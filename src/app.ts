/** @module buildApp: the whole request pipeline, assembled in one place, read top to bottom. */

import { Hono } from "hono";
import type { Config } from "./config.ts";
import type { Exchange } from "./exchange.ts";
import { accessLog } from "./middleware/access-log.ts";
import { holdUntilReady } from "./middleware/hold-until-ready.ts";
import { requestId } from "./middleware/request-id.ts";
import { requestMetrics } from "./middleware/request-metrics.ts";
import { proxy, type ProxyEnv } from "./proxy.ts";
import type { Readiness } from "./readiness.ts";
import type { UpstreamFetch } from "./runtime/types.ts";
import type { Metrics } from "./telemetry/metrics.ts";

export interface AppDeps {
  readiness: Readiness;
  metrics: Metrics;
  upstreamFetch: UpstreamFetch;
}

/** Returns the handler the server calls for each exchange. */
export function buildApp(config: Config, { readiness, metrics, upstreamFetch }: AppDeps): (exchange: Exchange) => Promise<Response> {
  const app = new Hono<ProxyEnv>();
  app.use(requestId());
  if (config.accessLog) app.use(accessLog());
  app.use(requestMetrics(metrics));
  app.use(holdUntilReady(readiness, { timeoutMs: config.holdTimeout, maxHeld: config.maxHeldRequests }));
  const host = config.targetHost.includes(":") ? `[${config.targetHost}]` : config.targetHost;
  app.all(
    "*",
    proxy({
      origin: `http://${host}:${config.targetPort}`,
      fetch: upstreamFetch,
      upstreamTimeoutMs: config.upstreamTimeout,
      maxRequestBody: config.maxRequestBody,
      trustedProxies: config.trustedProxies,
    }),
  );
  return async (exchange) => app.fetch(exchange.request, { exchange });
}
