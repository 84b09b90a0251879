/**
 * @module The shared cache's rules (RFC 9111), pure: which URL a request is for
 * (resourceUrl), how it may use the cache (requestPolicy), whether and for how long a
 * response may be stored (freshnessLifetime), and the header parsing they need.
 */

import { connectionNamed, FROM_TRUSTED_PROXIES_ONLY, SET_BY_THE_PROXY } from "../forwarded-headers.ts";
import { requestTarget } from "../request-target.ts";

/** What the cache reads from a request (a Request fits). */
export interface CacheRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: Headers;
}

/**
 * The URL of the resource a request is for, as the app sees it: the Host header, then the
 * target. Request.url's authority can come from elsewhere: under Deno from an absolute-form
 * target ("GET http://victim.example/page" with "Host: evil.example"), and the app's answer
 * for evil.example stored under victim.example's URL would reach victim.example's visitors.
 * A request without a Host header (HTTP/1.0; HTTP/1.1 too under Deno), or with an empty
 * one, has no host: the app gets no Host either and answers for its own address, whatever
 * authority the target names ("http:///page"). Under Deno a request whose URL names an
 * authority and that came without Host (HTTP/2, or an absolute-form target) is given that
 * authority as its Host header as it arrives (listener-deno.ts): the app gets it too.
 *
 * `fromTrustedProxy` says whether the client is a trusted proxy (forwarded-headers.ts's
 * trustsForwarding); it is asked only when the request has X-Forwarded-Proto or -Host, or
 * one of the headers only a trusted proxy may send (Forwarded, X-Forwarded-Port, -Ssl,
 * -Scheme, -Prefix). Then the app is told the scheme, host, port and path prefix that proxy
 * forwards, and answers for them (an http-to-https redirect, absolute links), so they are
 * part of the URL: a proxy may pass its client's own X-Forwarded-Ssl or Forwarded on as
 * they came, and the page made for them must not reach everyone else.
 */
export function resourceUrl(request: CacheRequest, fromTrustedProxy?: () => boolean): string {
  const headers = request.headers;
  const lowerHost = headers.get("host")?.toLowerCase() ?? "";
  const target = requestTarget(request.url) ?? "";
  if (fromTrustedProxy !== undefined) {
    const proto = headers.get("x-forwarded-proto");
    const forwardedHost = headers.get("x-forwarded-host");
    const others = FROM_TRUSTED_PROXIES_ONLY.some((name) => headers.has(name));
    if ((proto !== null || forwardedHost !== null || others) && fromTrustedProxy()) {
      return forwardedUrl(request, lowerHost, target, proto, forwardedHost);
    }
  }
  return `http://${lowerHost}${target}`;
}

/**
 * The URL the app is told through X-Forwarded-Proto and -Host, as upstreamRequestHeaders
 * forwards them from a trusted proxy (a header the request's Connection names is dropped);
 * the Host header too when it differs, as an app may read either; and the values of the
 * other forwarding headers a trusted proxy passes on (FROM_TRUSTED_PROXIES_ONLY), as they are.
 */
function forwardedUrl(request: CacheRequest, host: string, target: string, proto: string | null, forwardedHost: string | null): string {
  const dropped = connectionNamed(request.headers.get("connection"));
  if (dropped?.has("x-forwarded-proto")) proto = null;
  if (dropped?.has("x-forwarded-host")) forwardedHost = null;
  const toldHost = forwardedHost?.toLowerCase() ?? host;
  // The scheme as it came: Rack, Express and Django take only a lower-case "https" for
  // https, so the page made for "HTTPS" (a plain-http page, an http-to-https redirect) must
  // not answer "https".
  let url = `${proto?.trim() ?? "http"}://${toldHost}${target}`;
  if (toldHost !== host) url += ` (Host: ${host})`;
  for (const name of FROM_TRUSTED_PROXIES_ONLY) {
    const value = request.headers.get(name);
    if (value !== null && !dropped?.has(name)) url += ` (${name}: ${value})`;
  }
  return url;
}

/** What the cache reads from a response's head (a Response fits). */
export interface CacheResponseHead {
  readonly status: number;
  readonly headers: Headers;
}

/**
 * What a request may do with the cache:
 * - "use": answered from the cache when a fresh entry matches; else forwarded and stored.
 * - "refresh": never answered from the cache, but the response is stored (Cache-Control:
 *   no-cache on the request, RFC 9111 section 5.2.1.4: the stored one must not be used
 *   without validating it, and a full response is the validation this cache can do).
 * - "bypass": the cache is neither read nor written.
 */
export type RequestPolicy = "use" | "refresh" | "bypass";

/**
 * Cache-Control directives, names lowercased; a directive without a value maps to "", a
 * quoted-string value to its text (RFC 9110 section 5.6.4: quotes and backslash escapes
 * gone, commas inside it part of the value, not directive separators).
 */
export function parseCacheControl(header: string | null): Map<string, string> {
  const directives = new Map<string, string>();
  if (!header) return directives;
  // Most values quote nothing: a plain split is enough for them.
  for (const part of header.includes('"') ? splitOutsideQuotes(header) : header.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name || directives.has(name)) continue; // the first occurrence wins
    let value = eq < 0 ? "" : part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    directives.set(name, value);
  }
  return directives;
}

/** A list header's elements: split on the commas that are outside quoted strings. */
function splitOutsideQuotes(header: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < header.length; i++) {
    const char = header[i];
    if (quoted && char === "\\") i++; // a quoted-pair: the next character is literal
    else if (char === '"') quoted = !quoted;
    else if (char === "," && !quoted) {
      parts.push(header.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(header.slice(start));
  return parts;
}

/** A delta-seconds value (RFC 9111 section 1.2.2), or undefined when it is not one. */
export function deltaSeconds(value: string | undefined | null): number | undefined {
  return value != null && /^\d+$/.test(value) ? Number(value) : undefined;
}

/**
 * The Age (seconds) a response arrived with, or undefined when it has none or not a number.
 * Of a list (two caches on the way each added one), the first member counts (RFC 9111
 * section 5.1): "100, 1" read as a whole is no number, and a response already stale would
 * have been stored as new.
 */
export function ageSeconds(headers: Headers): number | undefined {
  const value = headers.get("age");
  if (value === null) return undefined;
  const comma = value.indexOf(",");
  return deltaSeconds(comma < 0 ? value : value.slice(0, comma).trim());
}

/** Sorted, lowercased, deduplicated header names of a Vary value ("*" kept as is). */
export function varyNames(header: string | null): string[] {
  if (!header) return [];
  const names = new Set<string>();
  for (const name of header.split(",")) {
    const trimmed = name.trim().toLowerCase();
    if (trimmed) names.add(trimmed);
  }
  return [...names].sort();
}

/** Which way a request goes past the cache (see RequestPolicy). */
export function requestPolicy(request: CacheRequest): RequestPolicy {
  if (request.method !== "GET" && request.method !== "HEAD") return "bypass";
  const headers = request.headers;
  // RFC 9111 section 3.5 would allow storing an authorised response marked public or
  // s-maxage; we never do: such a marking is more often a mistake than intent, and handing
  // one user's authorised response to another is the worst thing a shared cache can do.
  if (headers.has("authorization")) return "bypass";
  // Ranges and upgrades are answered by the upstream (206 and 101 are never stored).
  if (headers.has("range") || headers.has("upgrade")) return "bypass";
  // If-Match and If-Unmodified-Since are the app's to evaluate (412 when they fail, before
  // If-None-Match counts: RFC 9110 section 13.2.2): a hit would answer 200, or 304, where the
  // app (or a file sluice serves) answers 412.
  if (headers.has("if-match") || headers.has("if-unmodified-since")) return "bypass";
  const cacheControl = headers.get("cache-control");
  // Pragma: no-cache counts only without Cache-Control (RFC 9111 section 5.4).
  if (cacheControl === null) return /\bno-cache\b/i.test(headers.get("pragma") ?? "") ? "refresh" : "use";
  const directives = parseCacheControl(cacheControl);
  if (directives.has("no-store")) return "bypass";
  if (directives.has("no-cache")) return "refresh";
  return "use";
}

/**
 * For how many more seconds a response may be served from a shared cache, or undefined when
 * it must not be stored: status 200-399 but not 206 or 304, `Cache-Control: public` with
 * s-maxage (which wins) or max-age above its current Age, and none of no-cache, no-store,
 * private, Set-Cookie, `Vary: *` or a Vary naming a header the proxy sets (SET_BY_THE_PROXY).
 */
export function freshnessLifetime({ status, headers }: CacheResponseHead): number | undefined {
  if (status < 200 || status > 399 || status === 206 || status === 304) return undefined;
  // First what most responses lack (checked per response, so the cheapest test goes first).
  const cacheControl = headers.get("cache-control");
  if (cacheControl === null) return undefined;
  const directives = parseCacheControl(cacheControl);
  if (!directives.has("public")) return undefined;
  if (headers.has("set-cookie")) return undefined;
  // A response varying on a header the proxy sets for the app was made for a value that the
  // client's request, and so the key, does not hold (X-Forwarded-For: the peer's address).
  const vary = varyNames(headers.get("vary"));
  if (vary.includes("*") || vary.some((name) => SET_BY_THE_PROXY.has(name))) return undefined;
  if (directives.has("no-cache") || directives.has("no-store") || directives.has("private")) return undefined;
  const maxAge = directives.has("s-maxage") ? deltaSeconds(directives.get("s-maxage")) : deltaSeconds(directives.get("max-age"));
  if (maxAge === undefined) return undefined;
  const remaining = maxAge - (ageSeconds(headers) ?? 0);
  return remaining > 0 ? remaining : undefined;
}
