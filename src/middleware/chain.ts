/**
 * @module chain: middlewares and the final handler as one function of a Hono Context. Hono's
 * compose would cost an async frame and a promise per middleware per request (a few
 * microseconds on Bun); the chain calls the same middlewares the same way, synchronously
 * until one of them waits. src/app.ts calls it with a Context it makes itself (every request
 * takes the same route); it also serves as a Hono route's only handler.
 */

import type { Context, Env, MiddlewareHandler, Next } from "hono";

type Answer = Response | Promise<Response>;

/** Runs `middlewares` in order, then `handler`; each middleware's `next()` runs the rest. */
export function chain<E extends Env>(
  middlewares: readonly MiddlewareHandler<E>[],
  handler: (c: Context<E>) => Answer,
): (c: Context<E>) => Answer {
  return function chained(c) {
    // One next() and one array per request, not a closure per middleware: middlewares call
    // next() at most once and in order (Hono's contract), so `position` names the caller.
    let position = 0;
    const rests: (Answer | undefined)[] = [];
    const run = (i: number): Answer => {
      const middleware = middlewares[i];
      if (middleware === undefined) return handler(c);
      position = i;
      const result = middleware(c, next) as Answer | Promise<Response | void>;
      const rest = rests[i];
      // next() hands back the rest's answer itself (Hono's resolves to nothing and keeps the
      // answer in the context): a middleware that returns next() passes it on untouched.
      if (result === rest) return result as Answer;
      // One that awaited next() and returned nothing answers with what followed it.
      return Promise.resolve(result).then((response) => {
        if (response) return response;
        const answered = rests[i];
        if (answered === undefined) throw new Error(`Middleware ${middleware.name} neither answered nor called next()`);
        return answered;
      });
    };
    const next = (() => (rests[position] = run(position + 1))) as unknown as Next;
    return run(0);
  };
}
