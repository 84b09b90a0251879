/** @module requestMetrics: counts requests by status and observes their duration. */

import type { EndListener } from "../exchange.ts";
import type { Metrics } from "../telemetry/metrics.ts";
import { reportedStatus } from "./access-log.ts";

/** An exchange observer (see buildApp): it runs once per request, when the response ends. */
export function requestMetrics(metrics: Metrics): EndListener {
  return function requestMetrics(exchange) {
    metrics.requests.inc(reportedStatus(exchange));
    metrics.requestDuration.observe(exchange.elapsedMs() / 1000);
  };
}
