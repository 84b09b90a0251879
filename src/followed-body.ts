/**
 * @module Following a response body to its end: the exchange is counted in flight until its
 * last byte is handed over, counts its bytes, and is cut cleanly at the drain deadline.
 */

import type { EventBoundary } from "./event-stream.ts";
import type { Exchange } from "./exchange.ts";
import { oneChunkStream } from "./whole-body.ts";

/**
 * A small body of known length still arriving from the app: when its first chunk is the whole of it (the usual case),
 * it is handed over as bytes, which the runtime sends as fast as an untouched body (and on
 * Bun with its Content-Length); the exchange ends then, as a followed stream's ends when its
 * last chunk is handed over. A body that arrives in parts is followed as a stream, its first
 * chunk going out at once: a slow body is never held back.
 */
export async function firstChunkWhole(response: Response, length: number, exchange: Exchange): Promise<Response> {
  const reader = response.body!.getReader();
  let first: Awaited<ReturnType<typeof reader.read>>;
  try {
    first = await reader.read();
  } catch {
    reader.releaseLock();
    return new Response(observeBody(response.body!, exchange), response); // the error surfaces there
  }
  if (first.done || first.value.byteLength >= length) {
    const bytes = (first.done ? new Uint8Array(0) : first.value) as Uint8Array<ArrayBuffer>;
    reader.cancel().catch(() => {});
    exchange.bytesOut = bytes.byteLength;
    exchange.end("complete");
    // Untyped bytes would get Bun's own Content-Type (see oneChunkStream).
    return new Response(response.headers.has("content-type") ? bytes : oneChunkStream(bytes), response);
  }
  const chunk = first.value;
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(chunk);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
  return new Response(observeBody(rest, exchange), response);
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
      } catch (error) {
        if (exchange.ended) return;
        exchange.upstreamError = error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
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
