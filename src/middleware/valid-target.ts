/**
 * @module validTarget: refuses what cannot be passed on faithfully: a Host header that is no
 * host[:port] (400: under Deno its text becomes part of the path; two Host headers arrive
 * joined and fail too), a URL without a path (400: what a runtime could make of an
 * authority-form target) or of another scheme than http or https (400: Deno takes "ftp://"
 * and the app got its path), and CONNECT (501 with Connection: close: sluice proxies requests, it
 * opens no tunnels).
 * `OPTIONS *` never gets here as such: Bun refuses it, Deno hands it over as "/*".
 */

import type { MiddlewareHandler } from "hono";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import { isValidHost, requestTarget } from "../request-target.ts";

/** An http or https URL, as an absolute-form target (the scheme is case-insensitive). */
const HTTP_URL = /^https?:\/\//i;

export function validTarget(): MiddlewareHandler<ProxyEnv> {
  // Not async: a plain check, then next()'s own answer.
  return function validTarget(c, next) {
    const { exchange } = c.env;
    const { request } = exchange;
    if (request.method === "CONNECT") {
      exchange.rejected = "CONNECT";
      // With Connection: close: what follows a CONNECT's head is no request of the client's.
      // Deno 2.9.6 ignores a CONNECT's Content-Length and reads the body as the next request
      // (a front proxy that framed it as the body would hand that request's answer to its
      // next client if it kept the connection); Bun held the connection open, unanswered.
      const response = errorResponse(501, exchange, "CONNECT is not supported");
      response.headers.set("connection", "close");
      return Promise.resolve(response);
    }
    const host = request.headers.get("host");
    if (host !== null && !isValidHost(host)) {
      exchange.rejected = `invalid Host header ${JSON.stringify(host)}`;
      return Promise.resolve(errorResponse(400, exchange, "the Host header is not a host name or address with an optional port"));
    }
    const url = request.url;
    if (requestTarget(url) === undefined) {
      exchange.rejected = `no path in the request target ${JSON.stringify(url)}`;
      return Promise.resolve(errorResponse(400, exchange, "the request target is not a path"));
    }
    // Deno takes an absolute-form target of any scheme ("GET ftp://h.example/f", "ws://",
    // "foo://") and keeps it in Request.url: the app got "GET /f", the scheme gone. Bun
    // answers 400 itself. Per request, the usual URL costs one startsWith.
    if (!url.startsWith("http://") && url.charCodeAt(0) !== 47 && !HTTP_URL.test(url)) {
      exchange.rejected = `request target of another scheme ${JSON.stringify(url.slice(0, url.indexOf(":")))}`;
      return Promise.resolve(errorResponse(400, exchange, "the request target is not an http or https URL"));
    }
    return next();
  };
}
