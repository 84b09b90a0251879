/**
 * @module Following a response body to its end: the exchange is counted in flight until its
 * last byte is handed over, counts its bytes, and is cut cleanly at the drain deadline.
 */

import type { EventBoundary } from "./event-stream.ts";
import { Deadlines } from "./deadlines.ts";
import type { Exchange } from "./exchange.ts";
import { upstreamErrorText } from "./upstream/error-text.ts";
import { hasContentType, oneChunkStream } from "./whole-body.ts";

/**
 * How long a small body's first chunk is waited for before its response is handed over as a
 * stream. Until then the runtime has no body to send, so it cannot see the client leave
 * (Bun cancels a body it is sending when its client goes): a wait as long as the app's made
 * such a client's exchange stay in flight, and the app's connection open, for as long as the
 * app took, then logged it 200 and complete.
 */
const FIRST_CHUNK_WAIT_MS = 50;

type Chunk = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;

/** Resolves each waiting first read with undefined at FIRST_CHUNK_WAIT_MS (one timer for them all). */
const slowFirstChunks = new Deadlines<() => void>(FIRST_CHUNK_WAIT_MS, (giveUp) => giveUp());

/** `reading`'s result, or undefined when it is not there within FIRST_CHUNK_WAIT_MS. */
function firstChunkSoon(reading: Promise<Chunk>): Promise<Chunk | undefined> {
  return new Promise((resolve, reject) => {
    const giveUp = (): void => resolve(undefined);
    slowFirstChunks.add(giveUp);
    reading.then(
      (chunk) => (slowFirstChunks.delete(giveUp), resolve(chunk)),
      (error) => (slowFirstChunks.delete(giveUp), reject(error)),
    );
  });
}

/**
 * A small body of known length still arriving from the app: when its first chunk is the whole
 * of it (the usual case) and comes soon, it is handed over as bytes, which the runtime sends
 * as fast as an untouched body (and on Bun with its Content-Length); the exchange ends then,
 * as a followed stream's ends when its last chunk is handed over. A body that arrives in parts,
 * or later than FIRST_CHUNK_WAIT_MS, is followed as a stream, its first chunk going out at
 * once: a slow body is never held back, and the runtime follows its client meanwhile.
 */
export async function firstChunkWhole(response: Response, length: number, exchange: Exchange): Promise<Response> {
  const reader = response.body!.getReader();
  const reading = reader.read();
  let first: Chunk | undefined;
  try {
    first = await firstChunkSoon(reading);
  } catch {
    reader.releaseLock();
    return new Response(observeBody(response.body!, exchange), response); // the error surfaces there
  }
  if (first !== undefined && (first.done || first.value.byteLength >= length)) {
    const bytes = (first.done ? new Uint8Array(0) : first.value) as Uint8Array<ArrayBuffer>;
    reader.cancel().catch(() => {});
    exchange.bytesOut = bytes.byteLength;
    exchange.end("complete");
    // Untyped bytes would get Bun's own Content-Type (see oneChunkStream).
    return new Response(hasContentType(response.headers) ? bytes : oneChunkStream(bytes), response);
  }
  // The first chunk (read already, or still to come), then the rest.
  let next: Promise<Chunk> | undefined = first === undefined ? reading : Promise.resolve(first);
  const rest = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await (next ?? reader.read());
      next = undefined;
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return new Response(observeBody(rest, exchange, undefined, "complete", length), response);
}

/**
 * Passes a body through chunk by chunk, counting bytes and ending the exchange when it ends.
 * With `events` (an event stream), a cut between two events ends the body cleanly.
 */
export function observeBody(
  body: ReadableStream<Uint8Array>,
  exchange: Exchange,
  events?: EventBoundary,
  /** How the exchange ends when the body does: "aborted" for the answer to one cut already. */
  endedWhole: "complete" | "aborted" = "complete",
  /**
   * The body's known length: the stream closes with its last byte, as the runtime then sends a
   * body that came in one chunk with its Content-Length (Bun sends a stream that is still open
   * after its first chunk chunked).
   */
  length?: number,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let output: ReadableStreamDefaultController<Uint8Array> | undefined;
  const finish = (outcome: "complete" | "client-cancel" | "aborted" | "error"): void => {
    exchange.signal.removeEventListener("abort", onAbort);
    exchange.end(outcome);
  };
  // A cut response must end in an error, never a clean close: a clean close would send the
  // final chunk and the client would take a truncated body for a whole one. The error has no
  // reason on purpose: Bun prints an Error reason to stderr with a source excerpt (KiBs of the
  // minified bundle in the binary); the access record says what happened instead.
  const onAbort = (): void => {
    // An event stream cut between events ends properly: EventSource clients then reconnect.
    if (events?.atBoundary && exchange.abortReason === "aborted") output?.close();
    else output?.error();
    reader.cancel(exchange.abortReason).catch(() => {});
    finish(exchange.abortReason === "client-cancel" ? "client-cancel" : "aborted");
  };
  exchange.signal.addEventListener("abort", onAbort, { once: true });
  return new ReadableStream<Uint8Array>({
    start(controller) {
      output = controller;
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (exchange.ended) return;
        if (done) {
          controller.close();
          finish(endedWhole);
          return;
        }
        exchange.bytesOut += value.byteLength;
        events?.observe(value);
        controller.enqueue(value);
        if (exchange.bytesOut === length) {
          controller.close();
          finish(endedWhole);
        }
      } catch (error) {
        if (exchange.ended) return;
        exchange.upstreamError = upstreamErrorText(error);
        controller.error(); // no reason: see onAbort
        finish("error");
      }
    },
    cancel(reason) {
      // The runtime cancels the body when the client goes away.
      finish(exchange.abortReason === "aborted" ? "aborted" : "client-cancel");
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
