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
