/**
 * @module The file a request target names inside a served directory, decoded segment by
 * segment. Bun hands over targets normalized as URLs ("/a/../b" arrives as "/b"), Deno as
 * sent: both are checked here, so nothing depends on the runtime's normalization.
 */

import { requestPath } from "../request-target.ts";

/**
 * The path segments of the request target of `url` (a Request.url), each
 * percent-decoded, and whether the target ends with "/"; undefined when the target cannot
 * name a file inside the directory: a "." or ".." segment (also encoded as %2e), a segment
 * that decodes to one holding "/", "\" or NUL, malformed percent-encoding, an empty segment
 * ("//"), or a name starting with "." other than ".well-known" (no dotfiles are served).
 */
export function requestedSegments(url: string): { segments: string[]; directory: boolean } | undefined {
  const target = requestPath(url);
  if (target === "") return undefined;
  const path = target.slice(1);
  const directory = path === "" || path.endsWith("/");
  const raw = path === "" ? [] : (directory ? path.slice(0, -1) : path).split("/");
  const segments: string[] = [];
  for (const part of raw) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return undefined; // malformed percent-encoding
    }
    if (segment === "" || /[/\\\0]/.test(segment)) return undefined;
    if (segment.startsWith(".") && segment !== ".well-known") return undefined; // ".", "..", dotfiles
    segments.push(segment);
  }
  return { segments, directory };
}
