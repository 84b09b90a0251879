/** @module bodyless: which responses never carry a body. */

/** Responses to HEAD, and 1xx, 204 and 304 responses (RFC 9110 sections 6.4.1 and 9.3.2). */
export function bodyless(method: string, status: number): boolean {
  return method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200);
}
