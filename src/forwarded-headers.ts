/** @module Request and response header rules for proxying: hop-by-hop removal, X-Forwarded-*. */

import { type Cidr, cidrsContain } from "./config-values.ts";
import type { Exchange } from "./exchange.ts";
import type { HeaderFields } from "./upstream/http1-client.ts";

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
const HOP_BY_HOP_NAMES = new Set(HOP_BY_HOP);

/**
 * Forwarded and the rest of the X-Forwarded family: frameworks take them for the request's
 * own scheme, port and path prefix (Rack: X-Forwarded-Ssl: on means https, even over
 * X-Forwarded-Proto, and X-Forwarded-Port is the port of the URLs it writes; Werkzeug and
 * Spring read -Port and -Prefix). Only a trusted proxy may say so: from anyone else they are
 * dropped (upstreamRequestHeaders), as X-Forwarded-Proto is replaced, or a client could have
 * a page made for a scheme or port of its choosing and the cache hand it to everyone.
 */
export const FROM_TRUSTED_PROXIES_ONLY: readonly string[] = ["forwarded", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme", "x-forwarded-prefix"];

/**
 * Headers other proxies and CDNs use to name the client's address, which apps and their
 * middleware read before X-Forwarded-For (Rails' remote_ip reads Client-Ip and raises
 * IpSpoofAttackError when it disagrees with X-Forwarded-For; Go's chi RealIP takes
 * True-Client-IP, then X-Real-IP). Like FROM_TRUSTED_PROXIES_ONLY, only a trusted proxy's
 * reach the app, or any client could name its own address; unlike them they are not part of
 * the cache key (they differ per client, as X-Forwarded-For does).
 */
export const CLIENT_ADDRESS_HEADERS: readonly string[] = [
  "x-real-ip",
  "client-ip",
  "true-client-ip",
  "x-client-ip",
  "x-cluster-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
];

/**
 * Request headers whose value the app gets from sluice, whatever the client sent: set,
 * replaced or removed on the way (upstreamRequestHeaders below, X-Sendfile-Type in
 * middleware/x-sendfile.ts, the trace context in middleware/tracing.ts). Keep it in step
 * with them: a response that varies on one of these is never cached (cache/cache-rules.ts).
 */
export const SET_BY_THE_PROXY: ReadonlySet<string> = new Set([
  ...HOP_BY_HOP,
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  ...FROM_TRUSTED_PROXIES_ONLY,
  ...CLIENT_ADDRESS_HEADERS,
  "x-request-id",
  "x-request-start",
  "x-sendfile-type",
  "traceparent",
  "tracestate",
]);

/**
 * A request header named as one of SET_BY_THE_PROXY with underscores for some of its dashes
 * (X_Forwarded_Ssl, X-Forwarded_Proto): dropped, from every peer. A server that hands the app
 * CGI-style variables (Rack under Puma before 6.4.3 and 5.6.9, Python's wsgiref, other WSGI
 * and CGI servers) maps "-" and "_" alike to HTTP_X_FORWARDED_SSL, so the alias would reach
 * the app as the header itself: from any client, `X_Forwarded_Ssl: on` made Rack take the
 * request for https and `X_Forwarded_Port` set its port (CVE-2024-45614 in Puma; nginx drops
 * names with underscores by default for the same reason). No proxy sends these names, so a
 * trusted one's are a client's passed on: they go too.
 */
function isUnderscoreAlias(name: string): boolean {
  return name.includes("_") && SET_BY_THE_PROXY.has(name.replaceAll("_", "-"));
}

/** Sets a field, replacing every field of that name. */
export function setField(fields: HeaderFields, name: string, value: string): void {
  removeField(fields, name);
  fields.push([name, value]);
}

export function removeField(fields: HeaderFields, name: string): void {
  for (let i = fields.length - 1; i >= 0; i--) if (fields[i]![0] === name) fields.splice(i, 1);
}

/**
 * Fields that belong to the message, never to one connection: a Connection header listing
 * one (which RFC 9110 section 7.6.1 forbids a sender to do) is not obeyed for it. Obeyed,
 * `Connection: host` would send the app sluice's own address of it for Host, and the cache
 * keep the page made for that under the client's Host, for everyone; `Connection:
 * content-length` would send the body chunked, without the length the client gave.
 */
const NEVER_HOP_BY_HOP: ReadonlySet<string> = new Set(["host", "content-length"]);

/** The names a Connection header lists (they are hop-by-hop too), or undefined when none. */
export function connectionNamed(connection: string | null | undefined): Set<string> | undefined {
  if (!connection) return undefined;
  const names = new Set<string>();
  for (const name of connection.split(",")) {
    const trimmed = name.trim().toLowerCase();
    if (trimmed && !NEVER_HOP_BY_HOP.has(trimmed)) names.add(trimmed);
  }
  return names;
}

/**
 * True when the client is a trusted proxy: the app then gets its X-Forwarded-* and
 * Forwarded headers, extended, instead of sluice's own (so the scheme and host it forwards).
 */
export function trustsForwarding(trustedProxies: readonly Cidr[], clientAddress: string): boolean {
  return cidrsContain(trustedProxies, clientAddress);
}

/** Removes hop-by-hop headers, including every header the Connection header names. */
export function removeHopByHop(headers: Headers): void {
  for (const name of connectionNamed(headers.get("connection")) ?? []) headers.delete(name);
  for (const name of HOP_BY_HOP) headers.delete(name);
}

/**
 * The child's response header fields as the client gets them, edited before the Response is
 * made: hop-by-hop ones removed (those the Connection header names too), and X-Request-Id
 * set to the request's, replacing the app's own. Names as the app sent them, compared
 * case-insensitively.
 */
export function downstreamResponseFields(fields: HeaderFields, requestId: string): void {
  const connection = fields.find(([name]) => name.length === 10 && name.toLowerCase() === "connection");
  const named = connectionNamed(connection?.[1]);
  for (let i = fields.length - 1; i >= 0; i--) {
    const name = fields[i]![0].toLowerCase();
    if (HOP_BY_HOP_NAMES.has(name) || named?.has(name) || name === "x-request-id") fields.splice(i, 1);
  }
  fields.push(["x-request-id", requestId]);
}

/**
 * Headers for the upstream request, built in one pass over the client's (editing a Headers
 * object costs a runtime call per change, and the upstream client would read it back): the
 * client's own, less hop-by-hop ones, plus
 * X-Forwarded-For/-Proto/-Host, X-Request-Id and X-Request-Start. Incoming X-Forwarded-*
 * and Forwarded headers are extended only when the peer is a trusted proxy; otherwise
 * they are replaced, so a client cannot spoof its address; the other client-address
 * headers (CLIENT_ADDRESS_HEADERS) are dropped. Names of those with underscores
 * for dashes are dropped from every peer (isUnderscoreAlias).
 *
 * Undefined, with `exchange.rejected` set, when a value holds DEL (0x7f): no field value may
 * (RFC 9110 section 5.5), and it would reach the app's parser as it came. Bun 1.4.5 takes
 * it, while it refuses every other control character but HTAB (400) and Deno refuses DEL too.
 */
export function upstreamRequestHeaders(exchange: Exchange, trustedProxies: readonly Cidr[]): HeaderFields | undefined {
  const headers = exchange.request.headers;
  const client = exchange.clientAddress;
  const trusted = trustsForwarding(trustedProxies, client);
  const named = connectionNamed(headers.get("connection"));
  const fields: HeaderFields = [];
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let requestStart: string | undefined;
  let host: string | undefined;
  let withDel: string | undefined;
  headers.forEach((value, name) => {
    if (value.includes("\x7f")) withDel ??= name;
    if (HOP_BY_HOP_NAMES.has(name) || named?.has(name)) return;
    if (isUnderscoreAlias(name)) return;
    switch (name) {
      case "x-forwarded-for":
        forwardedFor = value;
        return;
      case "x-forwarded-proto":
        forwardedProto = value;
        return;
      case "x-forwarded-host":
        forwardedHost = value;
        return;
      case "x-request-start":
        requestStart = value;
        return;
      case "x-request-id":
        return; // the exchange's own, below (the client's when it was sane)
      case "forwarded":
      case "x-forwarded-port":
      case "x-forwarded-ssl":
      case "x-forwarded-scheme":
      case "x-forwarded-prefix":
      case "x-real-ip":
      case "client-ip":
      case "true-client-ip":
      case "x-client-ip":
      case "x-cluster-client-ip":
      case "cf-connecting-ip":
      case "fastly-client-ip":
        // FROM_TRUSTED_PROXIES_ONLY and CLIENT_ADDRESS_HEADERS, in a switch: no lookup per header
        if (!trusted) return;
        break;
      case "host":
        // An empty Host (allowed, meaning no authority) goes as none: the upstream client
        // then names the child, as for an HTTP/1.0 request without one.
        if (value === "") return;
        host = value;
        break;
    }
    fields.push([name, value]);
  });
  if (withDel !== undefined) {
    exchange.rejected = `control character in the value of ${JSON.stringify(withDel)}`;
    return undefined;
  }
  if (!trusted) forwardedFor = forwardedProto = forwardedHost = requestStart = undefined;
  if (client) fields.push(["x-forwarded-for", forwardedFor ? `${forwardedFor}, ${client}` : client]);
  else if (forwardedFor) fields.push(["x-forwarded-for", forwardedFor]);
  fields.push(["x-forwarded-proto", forwardedProto ?? "http"]);
  if (forwardedHost ?? host) fields.push(["x-forwarded-host", (forwardedHost ?? host)!]);
  fields.push(["x-request-id", exchange.requestId]);
  fields.push(["x-request-start", requestStart ?? `t=${exchange.startedAtEpochMs}`]);
  return fields;
}
