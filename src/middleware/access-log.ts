/** @module accessLog: one record per request, written when its response has ended. */

import type { EndListener, Exchange } from "../exchange.ts";
import type { LogRecord } from "@logtape/logtape";
import { log } from "../log.ts";

const ACCESS_CATEGORY = ["sluice", "access"] as const;

/** The status an exchange is reported with: 499 when the client went away first. */
export function reportedStatus(exchange: Exchange): number {
  return exchange.outcome === "client-cancel" ? 499 : exchange.status;
}

const round2 = (ms: number): number => Math.round(ms * 100) / 100;

/** An exchange observer (see buildApp): it runs once per request, when the response ends. */
export function accessLog(): EndListener {
  return function accessLog(exchange) {
    const { request } = exchange;
    const url = request.url;
    const pathStart = url.indexOf("/", url.indexOf("//") + 2);
    const queryStart = url.indexOf("?", pathStart);
    const status = reportedStatus(exchange);
    const path = queryStart < 0 ? url.slice(pathStart) : url.slice(pathStart, queryStart);
    const message = `${request.method} ${path} ${status}`;
    // A whole record handed to emit() skips LogTape's template parsing and lazy getters,
    // which matter at one record per request; level filtering still applies.
    const record: LogRecord = {
      category: ACCESS_CATEGORY,
      level: status >= 500 ? "warning" : "info",
      message: [message],
      rawMessage: message,
      timestamp: Date.now(),
      properties: {
      event: "access",
      method: request.method,
      path,
      status,
      durationMs: round2(exchange.elapsedMs()),
      bytesIn: exchange.bytesIn,
      bytesOut: exchange.bytesOut,
      requestId: exchange.requestId,
      clientAddress: exchange.clientAddress,
      upstreamMs: exchange.upstreamMs === undefined ? null : round2(exchange.upstreamMs),
      ...(exchange.outcome === "complete" ? {} : { outcome: exchange.outcome }),
      ...(exchange.upstreamError === undefined ? {} : { upstreamError: exchange.upstreamError }),
      },
    };
    log.access.emit(record);
  };
}
