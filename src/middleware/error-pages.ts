/**
 * @module errorPages: the 502, 503 and 504 answers sluice makes itself (marked by
 * errorResponse) get the configured HTML page instead of plain text, with the same status and
 * headers (Retry-After included). The app's own 502/503/504 pass through untouched.
 */

import type { Context, MiddlewareHandler } from "hono";
import type { ErrorPages, PageStatus } from "../files/error-pages.ts";
import { isGenerated } from "../generated-errors.ts";
import type { ProxyEnv } from "../proxy.ts";

function withPage(response: Response, pages: ErrorPages): Response {
  const page = pages[response.status as PageStatus];
  if (page === undefined || !isGenerated(response)) return response;
  response.body?.cancel().catch(() => {});
  const headers = new Headers(response.headers);
  headers.set("content-type", "text/html; charset=utf-8");
  headers.delete("content-length");
  return new Response(page, { status: response.status, headers });
}

export function errorPages(pages: ErrorPages): MiddlewareHandler<ProxyEnv> {
  if (Object.keys(pages).length === 0) {
    return function errorPages(_c, next) {
      return next();
    };
  }
  const answer = (c: Context<ProxyEnv>, response: Response | void) => withPage(response instanceof Response ? response : c.res, pages);
  // Not async: in middleware/chain.ts next() gives the answer; in Hono's compose, c.res holds it.
  return function errorPages(c, next) {
    const rest = next() as unknown as Response | Promise<Response | void>;
    return (rest instanceof Response ? answer(c, rest) : rest.then((response) => answer(c, response))) as Promise<Response>;
  };
}
