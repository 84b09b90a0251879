/** @module Request and response header rules for proxying: hop-by-hop removal, X-Forwarded-*. */

import { type Cidr, cidrsContain } from "./config-values.ts";
import type { Exchange } from "./exchange.ts";

/** RFC 9110 section 7.6.1 and the de-facto extras: headers meant for one connection only. */
export const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

/** Removes hop-by-hop headers, including every header the Connection header names. */
export function removeHopByHop(headers: Headers): void {
  const named = headers.get("connection");
  if (named) {
    for (const name of named.split(",")) {
      const trimmed = name.trim();
      if (trimmed) headers.delete(trimmed);
    }
  }
  for (const name of HOP_BY_HOP) headers.delete(name);
}

/**
 * The request's own headers, less hop-by-hop ones, edited in place when they can be (saves
 * a copy per request); a copy when they are immutable (the first delete throws before
 * changing anything).
 */
function editableHeaders(request: Request): Headers {
  try {
    removeHopByHop(request.headers);
    return request.headers;
  } catch {
    const headers = new Headers(request.headers);
    removeHopByHop(headers);
    return headers;
  }
}

/**
 * Headers for the upstream request: the client's own, less hop-by-hop ones, plus
 * X-Forwarded-For/-Proto/-Host, X-Request-Id and X-Request-Start. Incoming X-Forwarded-*
 * and Forwarded headers are extended only when the peer is a trusted proxy; otherwise
 * they are replaced, so a client cannot spoof its address.
 */
export function upstreamRequestHeaders(exchange: Exchange, trustedProxies: readonly Cidr[]): Headers {
  const headers = editableHeaders(exchange.request);
  const client = exchange.clientAddress;
  const trusted = cidrsContain(trustedProxies, client);
  const forwardedFor = trusted ? headers.get("x-forwarded-for") : null;
  if (client) headers.set("x-forwarded-for", forwardedFor ? `${forwardedFor}, ${client}` : client);
  else if (!trusted) headers.delete("x-forwarded-for");
  if (!trusted || !headers.has("x-forwarded-proto")) headers.set("x-forwarded-proto", "http");
  const host = headers.get("host");
  if (!trusted || !headers.has("x-forwarded-host")) {
    if (host) headers.set("x-forwarded-host", host);
    else headers.delete("x-forwarded-host");
  }
  if (!trusted) headers.delete("forwarded");
  headers.set("x-request-id", exchange.requestId);
  if (!trusted || !headers.has("x-request-start")) headers.set("x-request-start", `t=${exchange.startedAtEpochMs}`);
  return headers;
}
