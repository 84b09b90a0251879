/** @module requestId: keeps a sane incoming X-Request-Id or makes one (the proxy returns it to the client). */

import type { MiddlewareHandler } from "hono";
import type { ProxyEnv } from "../proxy.ts";

/** Ids from clients are kept only when short and plain, so logs cannot be forged through them. */
const SANE_ID = /^[\w\-.:/+=@]{1,200}$/;

export function requestId(): MiddlewareHandler<ProxyEnv> {
  // Not async: returning next()'s promise saves a promise per request on the hot path.
  return function requestId(c, next) {
    const incoming = c.env.exchange.request.headers.get("x-request-id");
    c.env.exchange.requestId = incoming && SANE_ID.test(incoming) ? incoming : crypto.randomUUID();
    return next();
  };
}
