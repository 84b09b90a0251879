/**
 * @module errorPages: the 502, 503 and 504 answers sluice makes itself (marked by
 * errorResponse) get the configured HTML page instead of plain text, with the same status and
 * headers (Retry-After included). The app's own 502/503/504 pass through untouched.
 */

import type { Context, MiddlewareHandler } from "hono";
import type { ErrorPages, PageStatus } from "../files/error-pages.ts";
import { isGenerated } from "../generated-errors.ts";
import type { ProxyEnv } from "../proxy.ts";

/** A page and its length in bytes. */
type Page = { html: string; length: string };

function withPage(response: Response, pages: Partial<Record<PageStatus, Page>>): Response {
  const page = pages[response.status as PageStatus];
  if (page === undefined || !isGenerated(response)) return response;
  response.body?.cancel().catch(() => {});
  const headers = new Headers(response.headers);
  headers.set("content-type", "text/html; charset=utf-8");
  // Its own length, not the plain text's: compression then leaves a page under
  // --compression-min-size alone, and a HEAD learns the length its GET would have.
  headers.set("content-length", page.length);
  return new Response(page.html, { status: response.status, headers });
}

export function errorPages(texts: ErrorPages): MiddlewareHandler<ProxyEnv> {
  if (Object.keys(texts).length === 0) {
    return function errorPages(_c, next) {
      return next();
    };
  }
  const utf8 = new TextEncoder();
  const pages = Object.fromEntries(
    Object.entries(texts).map(([status, html]) => [status, { html, length: String(utf8.encode(html).byteLength) }]),
  ) as Partial<Record<PageStatus, Page>>;
  const answer = (c: Context<ProxyEnv>, response: Response | void) => withPage(response instanceof Response ? response : c.res, pages);
  // Not async: in middleware/chain.ts next() gives the answer; in Hono's compose, c.res holds it.
  return function errorPages(c, next) {
    const rest = next() as unknown as Response | Promise<Response | void>;
    return (rest instanceof Response ? answer(c, rest) : rest.then((response) => answer(c, response))) as Promise<Response>;
  };
}
