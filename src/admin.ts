/** @module buildAdminApp: /livez, /readyz and /metrics, served on --admin-listen. */

import { Hono } from "hono";
import type { Readiness } from "./readiness.ts";
import type { Metrics } from "./telemetry/metrics.ts";

export interface AdminDeps {
  readiness: Readiness;
  metrics: Metrics;
  /** Refreshes gauges that are read rather than counted (requests in flight, held). */
  sample: () => void;
}

export function buildAdminApp({ readiness, metrics, sample }: AdminDeps): Hono {
  const app = new Hono();
  // Alive as long as the process answers: restarting sluice would not help anything else.
  app.get("/livez", (c) => c.text("ok\n"));
  app.get("/readyz", (c) => {
    const state = readiness.state;
    return c.text(`${state}\n`, readiness.isReady ? 200 : 503);
  });
  app.get("/metrics", (c) => {
    sample();
    return c.body(metrics.render(), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });
  return app;
}
