/**
 * @module holdUntilReady: requests that arrive before the child is ready wait for it (bounded);
 * childComeback: so do those the child refused because it had just exited.
 */

import type { Context, MiddlewareHandler, Next } from "hono";
import type { Exchange } from "../exchange.ts";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import type { Comeback, HoldLimits, Readiness } from "../readiness.ts";

export function holdUntilReady(readiness: Readiness, limits: HoldLimits): MiddlewareHandler<ProxyEnv> {
  async function hold(c: Context<ProxyEnv>, next: Next): Promise<Response | void> {
    const { exchange } = c.env;
    exchange.watchClient();
    if (!(await readiness.waitUntilReady(limits, exchange.signal))) {
      // Cut by the stop's drain deadline, a held request gets its 503 as any other (README).
      return errorResponse(exchange.signal.aborted && exchange.abortReason !== "aborted" ? 499 : 503, exchange);
    }
    await next();
  }
  // Not async when ready (the usual case): no extra promise per request.
  return function holdUntilReady(c, next) {
    return readiness.isChildReady ? next() : hold(c, next);
  };
}

/**
 * The child's exit reaches sluice a few milliseconds after its port closed; until then the
 * child still counts as ready. A connection refused meanwhile waits this long for the exit.
 */
const EXIT_NOTICE_MS = 1000;

/** For the proxy (ProxyOptions.childComeback) when a restart policy can bring the child back. */
export function childComeback(readiness: Readiness, limits: HoldLimits): (exchange: Exchange) => Promise<Comeback> {
  return function childComeback(exchange) {
    exchange.watchClient();
    return readiness.waitForComeback(EXIT_NOTICE_MS, limits, exchange.signal);
  };
}
