/**
 * @module wholeBody: responses made with their whole body already in memory (the upstream
 * client's small answers, cache hits). The runtime sends such a body without JS reading it,
 * so the server need not read its first chunk to learn that it is whole.
 */

const wholeBodies = new WeakSet<Response>();

/** Marks a response made from bytes (never a stream); returns it. */
export function markWholeBody(response: Response): Response {
  wholeBodies.add(response);
  return response;
}

/** True for a response marked by markWholeBody (a copy or a replacement is not). */
export function hasWholeBody(response: Response): boolean {
  return wholeBodies.has(response);
}
