/** @module accessLog: one record per request, written when its response has ended. */

import type { LogLevel, LogRecord } from "@logtape/logtape";
import { hundredthsText } from "../decimal-text.ts";
import type { EndListener, Exchange } from "../exchange.ts";
import { jsonString } from "../json-string.ts";
import { directJsonLog, log } from "../log.ts";
import { requestPath } from "../request-target.ts";

const ACCESS_CATEGORY = ["sluice", "access"] as const;

/** The status an exchange is reported with: 499 when the client went away first. */
export function reportedStatus(exchange: Exchange): number {
  return exchange.outcome === "client-cancel" ? 499 : exchange.status;
}

const round2 = (ms: number): number => Math.round(ms * 100) / 100;

/** A number as JSON writes it (null when not finite). */
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : "null");

/** An exchange observer (see buildApp): it runs once per request, when the response ends. */
export function accessLog(): EndListener {
  return function accessLog(exchange) {
    const status = reportedStatus(exchange);
    const level: LogLevel = status >= 500 ? "warning" : "info";
    const direct = directJsonLog();
    if (direct !== undefined && !direct.enabled(level)) return;
    const { request } = exchange;
    const path = requestPath(request.url);
    const message = `${request.method} ${path} ${status}`;
    const elapsedMs = exchange.elapsedMs();
    if (direct !== undefined) {
      const method = jsonString(request.method);
      const pathJson = jsonString(path);
      // Both plain (the usual case): the message needs no escaping either.
      const plain = method.length === request.method.length + 2 && pathJson.length === path.length + 2;
      // The same properties, in the same order, as the record below. The numbers are finite
      // (bytesIn counts bytes read; jsonNumber guards it anyway).
      direct.write(
        ACCESS_CATEGORY,
        level,
        plain ? `"${message}"` : jsonString(message),
        `"event":"access","method":${method},"path":${pathJson},"status":${status},"durationMs":${hundredthsText(elapsedMs)},` +
          `"bytesIn":${jsonNumber(exchange.bytesIn)},"bytesOut":${exchange.bytesOut},` +
          `"requestId":${jsonString(exchange.requestId)},"clientAddress":${jsonString(exchange.clientAddress)},` +
          `"upstreamMs":${exchange.upstreamMs === undefined ? "null" : hundredthsText(exchange.upstreamMs)}` +
          (exchange.outcome === "complete" ? "" : `,"outcome":"${exchange.outcome}"`) +
          (exchange.upstreamError === undefined ? "" : `,"upstreamError":${jsonString(exchange.upstreamError)}`) +
          (exchange.rejected === undefined ? "" : `,"rejected":${jsonString(exchange.rejected)}`),
      );
      return;
    }
    // A whole record handed to emit() skips LogTape's template parsing and lazy getters,
    // which matter at one record per request; level filtering still applies.
    const record: LogRecord = {
      category: ACCESS_CATEGORY,
      level,
      message: [message],
      rawMessage: message,
      timestamp: Date.now(),
      properties: {
        event: "access",
        method: request.method,
        path,
        status,
        durationMs: round2(elapsedMs),
        bytesIn: exchange.bytesIn,
        bytesOut: exchange.bytesOut,
        requestId: exchange.requestId,
        clientAddress: exchange.clientAddress,
        upstreamMs: exchange.upstreamMs === undefined ? null : round2(exchange.upstreamMs),
        ...(exchange.outcome === "complete" ? {} : { outcome: exchange.outcome }),
        ...(exchange.upstreamError === undefined ? {} : { upstreamError: exchange.upstreamError }),
        ...(exchange.rejected === undefined ? {} : { rejected: exchange.rejected }),
      },
    };
    log.access.emit(record);
  };
}
