/** @module requestMetrics: counts requests by status and observes their duration. */

import type { MiddlewareHandler } from "hono";
import type { Exchange } from "../exchange.ts";
import type { ProxyEnv } from "../proxy.ts";
import type { Metrics } from "../telemetry/metrics.ts";
import { reportedStatus } from "./access-log.ts";

export function requestMetrics(metrics: Metrics): MiddlewareHandler<ProxyEnv> {
  const observe = (exchange: Exchange): void => {
    metrics.requests.inc({ code: String(reportedStatus(exchange)) });
    metrics.requestDuration.observe(exchange.elapsedMs() / 1000);
  };
  return async function requestMetrics(c, next) {
    c.env.exchange.onEnd(observe);
    await next();
  };
}
