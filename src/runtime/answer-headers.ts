/**
 * @module Header edits on answers: the adapters use them to make the two servers send the
 * same heads (a Date on HEAD answers, one `connection: close`), the server for its own.
 */

import type { FetchHandler } from "./types.ts";

type Answer = ReturnType<FetchHandler>;

/**
 * `response` with header `name` set to `value` (removed for null): itself, or a copy when its
 * headers are immutable.
 */
export function withHeader(response: Response, name: string, value: string | null): Response {
  const edit = (headers: Headers): void => (value === null ? headers.delete(name) : headers.set(name, value));
  try {
    edit(response.headers);
    return response;
  } catch {
    const copy = new Response(response.body, response);
    edit(copy.headers);
    return copy;
  }
}

/** `answer` passed through `edit`, whether it is a Response or a promise of one (nothing passes as it is). */
export function editAnswer(answer: Answer, edit: (response: Response) => Response): Answer {
  if (answer === undefined) return answer;
  if (answer instanceof Response) return edit(answer);
  return answer.then((response) => (response === undefined ? response : edit(response)));
}

