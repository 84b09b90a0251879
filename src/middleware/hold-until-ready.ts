/** @module holdUntilReady: requests that arrive before the child is ready wait for it (bounded). */

import type { Context, MiddlewareHandler, Next } from "hono";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import type { HoldLimits, Readiness } from "../readiness.ts";

export function holdUntilReady(readiness: Readiness, limits: HoldLimits): MiddlewareHandler<ProxyEnv> {
  async function hold(c: Context<ProxyEnv>, next: Next): Promise<Response | void> {
    const { exchange } = c.env;
    exchange.watchClient();
    if (!(await readiness.waitUntilReady(limits, exchange.signal))) {
      return errorResponse(exchange.signal.aborted ? 499 : 503, exchange);
    }
    await next();
  }
  // Not async when ready (the usual case): no extra promise per request.
  return function holdUntilReady(c, next) {
    return readiness.isChildReady ? next() : hold(c, next);
  };
}
