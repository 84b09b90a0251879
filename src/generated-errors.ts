/**
 * @module The error responses sluice makes itself (errorResponse), marked so that the error
 * pages replace only those: an app's own 502, 503 or 504 passes through untouched, whatever
 * its status says.
 */

const generated = new WeakSet<Response>();

/** Marks `response` as sluice's own; returns it. */
export function markGenerated(response: Response): Response {
  generated.add(response);
  return response;
}

/** True for a response sluice made itself, false for the app's. */
export function isGenerated(response: Response): boolean {
  return generated.has(response);
}

const encoder = new TextEncoder();

/**
 * A short text/plain answer of sluice's own, with its Content-Length. A Response made from a
 * string has none until it is sent, so compression took it for a body of unknown length and
 * compressed it whatever its size: some twenty bytes made longer, at the cost of a compressor
 * each (a stop's or a start's 503s at a quarter of the rate). With its length it is left
 * alone under --compression-min-size, as the app's short answers are.
 */
export function plainText(text: string, status: number, headers: Headers): Response {
  const body = encoder.encode(text);
  headers.set("content-type", "text/plain; charset=utf-8");
  headers.set("content-length", String(body.byteLength));
  return new Response(body, { status, headers });
}
