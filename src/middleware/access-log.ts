/** @module accessLog: one record per request, written when its response body has ended. */

import type { MiddlewareHandler } from "hono";
import type { Exchange } from "../exchange.ts";
import { log } from "../log.ts";
import type { ProxyEnv } from "../proxy.ts";

/** The status an exchange is reported with: 499 when the client went away first. */
export function reportedStatus(exchange: Exchange): number {
  return exchange.outcome === "client-cancel" ? 499 : exchange.status;
}

function record(exchange: Exchange): void {
  const { request } = exchange;
  const url = request.url;
  const pathStart = url.indexOf("/", url.indexOf("//") + 2);
  const queryStart = url.indexOf("?", pathStart);
  const status = reportedStatus(exchange);
  const level = status >= 500 ? "warn" : "info";
  log.access[level]("{method} {path} {status}", {
    event: "access",
    method: request.method,
    path: queryStart < 0 ? url.slice(pathStart) : url.slice(pathStart, queryStart),
    status,
    durationMs: Math.round(exchange.elapsedMs() * 100) / 100,
    bytesIn: exchange.bytesIn,
    bytesOut: exchange.bytesOut,
    requestId: exchange.requestId,
    clientAddress: exchange.clientAddress,
    upstreamMs: exchange.upstreamMs === undefined ? null : Math.round(exchange.upstreamMs * 100) / 100,
    ...(exchange.outcome === "complete" ? {} : { outcome: exchange.outcome }),
    ...(exchange.upstreamError === undefined ? {} : { upstreamError: exchange.upstreamError }),
  });
}

export function accessLog(): MiddlewareHandler<ProxyEnv> {
  return async function accessLog(c, next) {
    c.env.exchange.onEnd(record);
    await next();
  };
}
