/** @module replaceResponse: how a post-processing middleware hands on its new answer. */

import type { Context } from "hono";

/**
 * Sets and returns `response`, so that it is the answer both in Hono's compose (which reads
 * c.res) and in middleware/chain.ts (which takes what the middleware returns). The reset
 * first keeps Hono from merging the old response's headers into the new one.
 */
export function replaceResponse(c: Context, response: Response): Response {
  c.res = undefined;
  c.res = response;
  return response;
}

/** The answer a middleware's `await next()` produced, under either runner. */
export function answerOf(c: Context, answered: unknown): Response {
  return answered instanceof Response ? answered : c.res;
}
