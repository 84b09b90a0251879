/** @module holdUntilReady: requests that arrive before the child is ready wait for it (bounded). */

import type { MiddlewareHandler } from "hono";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import type { HoldLimits, Readiness } from "../readiness.ts";

export function holdUntilReady(readiness: Readiness, limits: HoldLimits): MiddlewareHandler<ProxyEnv> {
  return async function holdUntilReady(c, next) {
    if (!readiness.isChildReady && !(await readiness.waitUntilReady(limits, c.env.exchange.signal))) {
      return errorResponse(c.env.exchange.signal.aborted ? 499 : 503, c.env.exchange);
    }
    await next();
  };
}
