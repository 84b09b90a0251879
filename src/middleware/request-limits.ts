/**
 * @module requestLimits: 431 for a request with more header fields or a larger head than
 * --max-header-count / --max-header-size allow. Only what the runtime does not already
 * enforce is checked here (its own limits answer before any JavaScript runs).
 */

import type { MiddlewareHandler } from "hono";
import { plainText } from "../generated-errors.ts";
import type { ProxyEnv } from "../proxy.ts";
import { requestTarget } from "../request-target.ts";
import type { HttpServerLimits } from "../runtime/types.ts";

export interface RequestLimitsOptions {
  /** Most header fields; 0 leaves only the runtime's own limit. */
  maxHeaderCount: number;
  /** Largest head in bytes (request line and headers); 0 leaves only the runtime's own limit. */
  maxHeaderSize: number;
  runtimeLimits: HttpServerLimits;
  countHeaders: (headers: Headers) => number;
}

/** The middleware, or undefined when the runtime's own limits are already as strict. */
export function requestLimits(
  { maxHeaderCount, maxHeaderSize, runtimeLimits, countHeaders }: RequestLimitsOptions,
): MiddlewareHandler<ProxyEnv> | undefined {
  const checkCount = maxHeaderCount > 0 && maxHeaderCount < runtimeLimits.maxHeaderCount;
  const checkSize = maxHeaderSize > 0 && maxHeaderSize < runtimeLimits.maxHeaderBytes;
  if (!checkCount && !checkSize) return undefined;
  return function requestLimits(c, next) {
    const { request, requestId } = c.env.exchange;
    if (checkCount && countHeaders(request.headers) > maxHeaderCount) {
      return Promise.resolve(tooLarge(`more than ${maxHeaderCount} header fields (--max-header-count)`, requestId));
    }
    if (checkSize && headSize(request) > maxHeaderSize) {
      return Promise.resolve(tooLarge(`request head over ${maxHeaderSize} bytes (--max-header-size)`, requestId));
    }
    return next();
  };
}

/**
 * The head's size as sent: request line and one `name: value\r\n` line per field. The target
 * is taken from the URL without its origin: counting the absolute URL refused heads up to the
 * Host's length plus 5 bytes under the limit.
 */
function headSize(request: Request): number {
  const target = requestTarget(request.url) ?? request.url;
  let size = request.method.length + target.length + 14; // " " + " HTTP/1.1\r\n" + final "\r\n"
  for (const [name, value] of request.headers) size += name.length + value.length + 4;
  return size;
}

/** Names the limit, never the headers' contents. The connection closes: the body, if any, is unread. */
function tooLarge(limit: string, requestId: string): Response {
  // With its Content-Length (plainText): made from a string, Deno sent it chunked.
  return plainText(`Request Header Fields Too Large: ${limit}\n`, 431, new Headers({ "x-request-id": requestId, "connection": "close" }));
}
