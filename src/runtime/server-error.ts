/** @module The answer to an error that escaped a server's request handler, on both adapters. */

/**
 * A plain 500. The error's text is for the log, never the client: on Bun a file body that
 * cannot be opened fails after the handler, with the file's path in its message.
 */
export function plainServerError(): Response {
  return new Response("Internal Server Error\n", { status: 500, headers: { "content-type": "text/plain; charset=utf-8" } });
}
