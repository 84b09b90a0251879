/**
 * @module wholeBody: responses made with their whole body already in memory (the upstream
 * client's small answers, cache hits). The runtime sends such a body without JS reading it,
 * so the server need not read its first chunk to learn that it is whole.
 */

const wholeBodies = new WeakSet<Response>();

/** Marks a response whose body is in memory already (bytes, or oneChunkStream of them); returns it. */
export function markWholeBody(response: Response): Response {
  wholeBodies.add(response);
  return response;
}

/** True for a response marked by markWholeBody (a copy or a replacement is not). */
export function hasWholeBody(response: Response): boolean {
  return wholeBodies.has(response);
}

/**
 * True when Bun's server sends a bytes body with `headers`' own Content-Type alone: one with a
 * value. An empty Content-Type counts as none there: Bun sends it and its own type beside it
 * (two Content-Type fields, "" and application/octet-stream), so such a body goes as
 * oneChunkStream too.
 */
export function hasContentType(headers: Headers): boolean {
  return Boolean(headers.get("content-type"));
}

/**
 * `bytes` as a stream of one chunk, for a response without Content-Type (see hasContentType): Bun's server sends
 * a body of bytes (or a Blob, or a string) that has none with its own
 * (application/octet-stream), and leaves a stream's alone; a one-chunk stream still goes out
 * with its Content-Length.
 */
export function oneChunkStream(bytes: Uint8Array<ArrayBuffer>): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}
