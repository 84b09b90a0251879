/** @module bodyless: which responses never carry a body. */

import { oneChunkStream } from "./whole-body.ts";

/** Responses to HEAD, and 1xx, 204 and 304 responses (RFC 9110 sections 6.4.1 and 9.3.2). */
export function bodyless(method: string, status: number): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/**
 * A placeholder body for a HEAD answer without Content-Length (its GET's length is unknown,
 * as for a compressed one): both runtimes add `Content-Length: 0` to a null body, a length
 * the GET would not have (RFC 9110 section 8.6). Neither sends a body to a HEAD; given one,
 * Bun says `Transfer-Encoding: chunked` and Deno sends no length (Bun 1.4.5, Deno 2.9.6).
 */
export function unsentBody(): ReadableStream<Uint8Array> {
  return oneChunkStream(new Uint8Array(1));
}
