/** @module requestId: keeps a sane incoming X-Request-Id or makes one, and returns it to the client. */

import type { MiddlewareHandler } from "hono";
import type { ProxyEnv } from "../proxy.ts";

/** Ids from clients are kept only when short and plain, so logs cannot be forged through them. */
const SANE_ID = /^[\w\-.:/+=@]{1,200}$/;

export function requestId(): MiddlewareHandler<ProxyEnv> {
  return async function requestId(c, next) {
    const incoming = c.req.header("x-request-id");
    const id = incoming && SANE_ID.test(incoming) ? incoming : crypto.randomUUID();
    c.env.exchange.requestId = id;
    await next();
    if (!c.res.headers.has("x-request-id")) c.res.headers.set("x-request-id", id);
  };
}
