/**
 * @module The request target as the client sent it (its path and query), read from
 * Request.url, and the rule for the Host header that the runtimes build Request.url from.
 * Bun gives only the target ("/a") when the Host cannot make a URL (absent, as HTTP/1.0
 * allows, or not a host), and "evil.example:443" for CONNECT; Deno pastes the Host in as it
 * came, so "Host: x/admin" turns "/a" into "http://x/admin/a" (docs/runtime-notes.md).
 */

/**
 * A Host header value as RFC 9110 section 7.2 has it: a host name, IPv4 address or
 * bracketed IPv6 address, then an optional port; empty is allowed (RFC 9112 section 3.2).
 * Two Host headers arrive joined by ", " and fail it, as they must.
 */
const HOST = /^(?:\[[\dA-Fa-f:.]+\]|[\w\-.~!$&'()*+;=%]*)(?::\d{0,5})?$/;

export function isValidHost(value: string): boolean {
  return HOST.test(value);
}

/**
 * The path and query of `url` (a Request.url); undefined when it has no path (CONNECT, "*").
 * The authority ends at the first "/", "?" or "#": Deno hands an absolute-form target over as
 * sent, so "http://x?z=/admin" is the empty path (taken as "/") with the query "z=/admin",
 * never the path "/admin".
 */
export function requestTarget(url: string): string | undefined {
  if (url.charCodeAt(0) === 47) return url; // "/": only the target, no origin
  const authority = url.indexOf("//");
  if (authority < 0) return undefined;
  // Per request: a scan, not a regular expression over a copy of the URL.
  for (let at = authority + 2; at < url.length; at++) {
    const code = url.charCodeAt(at);
    if (code === 47) return url.slice(at); // "/"
    if (code === 63 || code === 35) return `/${url.slice(at)}`; // "?", "#"
  }
  return undefined;
}

/**
 * The path of `url` (a Request.url), without the query or a fragment; "" when it has none.
 * Characters outside ASCII are percent-encoded as UTF-8, as the child gets them (see
 * wireTarget): Deno hands them over decoded, Bun encoded, and the access record named the
 * same request's path "/café" under Deno and "/caf%C3%A9" on the binary.
 */
export function requestPath(url: string): string {
  const target = requestTarget(url) ?? "";
  const query = target.indexOf("?");
  const fragment = target.indexOf("#");
  const end = query < 0 ? fragment : fragment < 0 ? query : Math.min(query, fragment);
  const path = end < 0 ? target : target.slice(0, end);
  return HAS_NOT_ASCII.test(path) ? encodeNotAscii(path) : path;
}

/** Any character but visible ASCII: what a request line cannot carry as it is. */
const NOT_VISIBLE_ASCII = /[^!-~]/;
const NOT_ASCII = /[\u0080-\uffff]+/g;
const HAS_NOT_ASCII = /[\u0080-\uffff]/;
const utf8 = new TextEncoder();

/** `text` with each run of characters outside ASCII percent-encoded as UTF-8. */
function encodeNotAscii(text: string): string {
  return text.replace(NOT_ASCII, (run) => {
    let encoded = "";
    for (const byte of utf8.encode(run)) encoded += `%${byte.toString(16).toUpperCase()}`; // 80-FF: two digits
    return encoded;
  });
}

/**
 * `target` (from requestTarget) as it goes on the wire to the child: characters outside ASCII
 * percent-encoded as UTF-8, as the binary gets it from Bun. Deno hands a target's raw UTF-8
 * bytes over decoded, and each character written as one byte would be its code's low byte:
 * "\u010d\u010a" a CR LF, ending the request line and letting a client add headers or a whole
 * request of its own. Throws a TypeError for a target with a space or a control character.
 */
export function wireTarget(target: string): string {
  if (!NOT_VISIBLE_ASCII.test(target)) return target;
  const ascii = encodeNotAscii(target);
  if (NOT_VISIBLE_ASCII.test(ascii)) throw new TypeError(`Cannot send a request for ${JSON.stringify(target)}: invalid request target`);
  return ascii;
}
