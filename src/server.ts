/** @module Server: the public listener, its in-flight registry, and the drain with a deadline. */

import type { Pipeline } from "./app.ts";
import { CLOSE_GRACE_MS, type Config } from "./config.ts";
import { bodyless, unsentBody } from "./bodyless.ts";
import { Deadlines, raceDeadline } from "./deadlines.ts";
import { EventBoundary, isEventStream } from "./event-stream.ts";
import { firstChunkWhole, observeBody } from "./followed-body.ts";
import { Exchange, NO_RESPONSE_STATUS } from "./exchange.ts";
import { hasFileBody } from "./files/file-response.ts";
import { hasWholeBody } from "./whole-body.ts";
import { log } from "./log.ts";
import { errorResponse } from "./proxy.ts";
import { requestPath } from "./request-target.ts";
import { withHeader } from "./runtime/answer-headers.ts";
import { plainServerError } from "./runtime/server-error.ts";
import type { ConnectionInfo, HttpListener, Runtime, ServeOptions } from "./runtime/types.ts";
import { type AcceptedUpgrade, takeWebSocketUpgrade } from "./websockets/websocket-proxy.ts";

/**
 * Bodies of a known length up to this size that are whole in memory (see whole-body.ts), or
 * whose first chunk is the whole of them (see firstChunkWhole), pass through untouched where
 * the runtime does that much faster than JS can observe them (Bun: about twice the requests per second);
 * their exchange ends when the headers go out (such a body fits in the socket buffers, so
 * little happens after), and the drain still waits for them through the listener's own
 * close. Larger and unknown-length (streamed) bodies are observed to the last byte, except
 * a file's (X-Sendfile, static files): a JS stream around it would cost sendfile(2), and on
 * Bun its Content-Length too (Bun sends a stream of more than one chunk chunked).
 */
const PASSTHROUGH_MAX_BYTES = 64 * 1024;
/** How often drainWhere looks for exchanges sent on elsewhere meanwhile (see there). */
const MOVED_CHECK_MS = 100;

/**
 * An IPv4 client of a dual-stack listener (`--http-host ::`) arrives as "::ffff:192.0.2.1"
 * on both runtimes; it is logged and forwarded (X-Forwarded-For) as the IPv4 address it is.
 */
function withoutIPv4Mapping(address: string): string {
  return address.startsWith("::ffff:") && address.includes(".", 7) ? address.slice(7) : address;
}

/** The listener's connection timeouts, in ms (0: none); see --idle-timeout and --header-timeout. */
export type ClientTimeouts = Pick<Config, "idleTimeout" | "headerTimeout">;

export interface DrainResult {
  drained: number;
  /** Cut at the drain deadline, `closed` included. */
  aborted: number;
  /**
   * Of the aborted, WebSockets (closed with 1001) and event streams (ended as their clients
   * expect): long-lived by nature, this is how they end at a stop, not a failure.
   */
  closed: number;
}

/** A pipeline in service, and how many exchanges still run on it. */
class PipelineSlot {
  inFlight = 0;
  retired = false;
  constructor(readonly pipeline: Pipeline) {}
}

/**
 * Serves HTTP and keeps its own registry of exchanges in flight: a request counts from
 * arrival until its response body has been sent or cut (neither runtime offers a portable
 * count). The stop sequence uses it to drain, then to abort what is left. A reload swaps
 * the pipeline: new requests take the new one, requests in flight finish on the one they
 * started on, which is released after its last exchange ends.
 */
export class Server {
  #listener: HttpListener | undefined;
  /** Settles when the closed listener has finished every response, bodies included. */
  #listenerDone: Promise<void> | undefined;
  #inFlight = new Map<Exchange, PipelineSlot>();
  /** Open WebSockets (also in #inFlight) and how to close them at the drain deadline. */
  #websockets = new Map<Exchange, () => void>();
  /** Event streams being sent (also in #inFlight): they end cleanly when cut. */
  #eventStreams = new Set<Exchange>();
  /** Answers of exchanges cut at the drain deadline, being sent in the close grace (also in #inFlight). */
  #cutAnswers = new Set<Exchange>();
  #emptied: (() => void) | undefined;
  /** Told of each exchange's end while some drainWhere waits for a subset of them. */
  #endWatchers = new Set<(exchange: Exchange) => void>();
  /**
   * Exchanges still in flight when the idle timeout could cut their connection are held
   * (HttpListener.holdOpen): at arrival when it could at any time, else after idleTimeoutSafeMs.
   */
  #holdAtArrival = false;
  #holdLater: Deadlines<Exchange> | undefined;
  #held = new Set<Exchange>();
  #connectionClose = false;
  /** True once the drain cut the connections so that answers not yet sent are lost. */
  #connectionsCut = false;
  #runtime: Runtime;
  #current: PipelineSlot;

  constructor(runtime: Runtime, pipeline: Pipeline) {
    this.#runtime = runtime;
    this.#current = new PipelineSlot(pipeline);
  }

  /** Retires the pipeline in service (at stop, after the drain), releasing it once idle. */
  retirePipeline(): void {
    this.swapPipeline({ handle: (exchange) => errorResponse(503, exchange), onEnd: [], release() {} });
  }

  /** Serves new requests with `pipeline` from now on; the old one is released once idle. */
  swapPipeline(pipeline: Pipeline): void {
    const old = this.#current;
    this.#current = new PipelineSlot(pipeline);
    old.retired = true;
    if (old.inFlight === 0) old.pipeline.release();
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get port(): number {
    return this.#listener?.port ?? 0;
  }

  async start(
    hostname: string,
    port: number,
    { idleTimeout, headerTimeout }: ClientTimeouts = { idleTimeout: 0, headerTimeout: 0 },
    onListenerFailed?: ServeOptions["onListenerFailed"],
  ): Promise<void> {
    this.#listener = await this.#runtime.serve({
      hostname,
      port,
      handler: (request, info) => this.#serve(request, info),
      // What fails after the handler: a file body Bun opens itself, deleted or locked since
      // it was checked. Logged; the client gets a plain 500, never the error's text. Deno
      // also reports here each body observeBody cut on purpose, with no reason: its access
      // record already says why.
      onError: (error) => {
        if (error !== undefined) {
          log.lifecycle.error("A response failed in the runtime: {error}", {
            event: "response.failed",
            error: error instanceof Error ? error.message : String(error),
          });
        }
        return plainServerError();
      },
      idleTimeoutMs: idleTimeout,
      headerTimeoutMs: headerTimeout,
      ...(onListenerFailed && { onListenerFailed }),
    });
    const safeMs = this.#listener.idleTimeoutSafeMs;
    this.#holdAtArrival = safeMs === 0;
    if (safeMs) this.#holdLater = new Deadlines(safeMs, (exchange) => this.#holdOpen(exchange));
  }

  #holdOpen(exchange: Exchange): void {
    this.#held.add(exchange);
    this.#listener!.holdOpen(exchange.request);
  }

  /** From now on every response carries `Connection: close`, so keep-alive clients move away. */
  closeConnectionsAfterResponse(): void {
    this.#connectionClose = true;
  }

  /** Closes the listening socket; resolves once new connections are refused. Requests in flight go on. */
  closeListener(): Promise<void> {
    this.#listenerDone = this.#listener?.close();
    return this.#listener?.refusing() ?? Promise.resolve();
  }

  /**
   * Waits for the requests in flight to finish, up to `timeoutMs` or until `cut` aborts;
   * then aborts the rest and cuts their connections.
   */
  async drain(timeoutMs: number, cut: AbortSignal): Promise<DrainResult> {
    // One a rolling restart already cut at its own drain deadline, still ending (a WebSocket
    // waiting for its app's close), is waited for but counted there, not here again.
    let before = 0;
    for (const exchange of this.#inFlight.keys()) if (exchange.abortReason !== "aborted") before++;
    const emptied = this.#inFlight.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#emptied = resolve));
    const finished = await raceDeadline(Promise.all([emptied, this.#listenerDone]), timeoutMs, cut);
    let aborted = 0;
    let closed = 0;
    for (const exchange of this.#inFlight.keys()) {
      if (exchange.abortReason === "aborted") continue;
      aborted++;
      if (this.#cut(exchange)) closed++;
    }
    for (const goAway of [...this.#websockets.values()]) goAway();
    // What was cut gets a moment to say so: a request still waiting for the app its 503, a
    // WebSocket its 1001, an event stream its clean end. Cutting the connections at once left
    // the binary's clients with no answer at all while the access record showed the 503. A
    // fast stop keeps this moment too: it is short, and usually over in milliseconds.
    if (aborted > 0 && finished === undefined) {
      const settled = this.#inFlight.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.#emptied = resolve));
      await raceDeadline(Promise.all([settled, this.#listenerDone]), CLOSE_GRACE_MS);
    }
    // Also cuts bodies that passed through unobserved and are still being sent.
    if (finished === undefined) this.#connectionsCut = this.#listener?.closeAllConnections() ?? false;
    // An answer not sent by now never will be; its record says what went out of it.
    for (const exchange of [...this.#cutAnswers]) exchange.end("aborted");
    return { drained: before - aborted, aborted, closed };
  }

  /**
   * Waits up to `timeoutMs` for the exchanges in flight now that `test` picks (a rolling
   * restart: those that went to the old child) to end; then aborts those left that it still
   * picks (one sent again to the new child is not) as the drain does (a WebSocket gets 1001)
   * and gives their answers the close grace. When `cut` aborts first (sluice's own stop
   * began), it returns at once and leaves them to the stop's drain. `onCut` hears the counts
   * as it aborts them: a stop in the close grace must still report what was cut.
   */
  async drainWhere(
    test: (exchange: Exchange) => boolean,
    timeoutMs: number,
    cut: AbortSignal,
    onCut?: (result: DrainResult) => void,
  ): Promise<DrainResult> {
    const pending = new Set<Exchange>();
    for (const exchange of this.#inFlight.keys()) if (test(exchange)) pending.add(exchange);
    const before = pending.size;
    const { promise: ended, resolve } = Promise.withResolvers<true>();
    const watch = (exchange: Exchange): void => void (pending.delete(exchange) && pending.size === 0 && resolve(true));
    let moved: ReturnType<typeof setInterval> | undefined;
    if (before === 0) resolve(true);
    else {
      this.#endWatchers.add(watch);
      // One sent again to the new child (the old one refused it or died on it) is not to be
      // waited for: nothing tells of the move, so look again now and then.
      moved = setInterval(() => {
        for (const exchange of pending) if (!test(exchange)) watch(exchange);
      }, MOVED_CHECK_MS);
    }
    try {
      if ((await raceDeadline(ended, timeoutMs, cut)) || cut.aborted) return { drained: before - pending.size, aborted: 0, closed: 0 };
      const left = [...pending].filter(test);
      if (left.length === 0) return { drained: before, aborted: 0, closed: 0 };
      const aborted = left.length;
      let closed = 0;
      for (const exchange of left) {
        if (this.#cut(exchange)) closed++;
        this.#websockets.get(exchange)?.();
      }
      const result = { drained: before - aborted, aborted, closed };
      onCut?.(result);
      await raceDeadline(ended, CLOSE_GRACE_MS, cut);
      return result;
    } finally {
      this.#endWatchers.delete(watch);
      clearInterval(moved);
    }
  }

  /**
   * Aborts an exchange at a drain deadline; true for a WebSocket or an event stream, which
   * are long-lived by nature (counted as `closed` too).
   */
  #cut(exchange: Exchange): boolean {
    const longLived = this.#websockets.has(exchange) || this.#eventStreams.has(exchange);
    exchange.abort("aborted");
    return longLived;
  }

  #serve(request: Request, { remoteAddress }: ConnectionInfo): Response | undefined | Promise<Response | undefined> {
    const slot = this.#current;
    const exchange = new Exchange(request, withoutIPv4Mapping(remoteAddress), this.#onEnd);
    this.#inFlight.set(exchange, slot);
    slot.inFlight++;
    if (this.#holdAtArrival) this.#holdOpen(exchange);
    else this.#holdLater?.add(exchange);
    // A failure inside the pipeline is the client's 500, never its text (the runtime's own
    // error answer would carry it).
    const failed = (error: unknown): Response | undefined | Promise<Response | undefined> => {
      log.lifecycle.error("Request {method} {path} failed inside sluice: {error}", {
        event: "request.failed",
        method: request.method,
        path: requestPath(request.url),
        requestId: exchange.requestId,
        error: error instanceof Error ? error.message : String(error),
      });
      return this.#respond(exchange, errorResponse(500, exchange));
    };
    let answer: Response | Promise<Response>;
    try {
      answer = slot.pipeline.handle(exchange);
    } catch (error) {
      return failed(error);
    }
    // Not async: a plain then, instead of an async function's frame and await per request.
    return answer instanceof Response ? this.#respond(exchange, answer) : answer.then((response) => this.#respond(exchange, response), failed);
  }

  /** The pipeline's answer, as the runtime sends it: the exchange ends now, or when its body does. */
  #respond(exchange: Exchange, response: Response): Response | undefined | Promise<Response | undefined> {
    const upgrade = takeWebSocketUpgrade(exchange);
    if (upgrade) return this.#upgrade(exchange, upgrade);
    exchange.status = response.status;
    // An answer to HEAD, a 204 or a 304 goes without a body, whichever step made it: nothing
    // would read it, and the exchange would wait for its end. (`body` is read only then: on
    // Bun reading it makes a stream.)
    if (bodyless(exchange.request.method, response.status) && response.body !== null) {
      response.body.cancel().catch(() => {});
      response = new Response(null, response);
    }
    let final = response;
    const length = response.headers.get("content-length");
    // A client that left while a slow upstream answered (an exchange answered within the
    // watch delay is not checked: see Exchange.watchClient).
    if (exchange.watchingClient) exchange.clientGone();
    const aborted = exchange.abortReason;
    if (aborted === "client-cancel" || (aborted === "aborted" && this.#connectionsCut)) {
      // Its answer came after its connection was cut (a fast stop, or later than the close
      // grace): the client got none.
      if (aborted === "aborted") exchange.status = NO_RESPONSE_STATUS;
      exchange.end(aborted);
    } else if (aborted === "aborted") {
      // Cut at the drain deadline and answered within the close grace (its 503): the answer
      // does go out, so its bytes count. One of known length (an error page) is whole and
      // counted as handed over, keeping its Content-Length; any other is followed as it is
      // sent, and ended when its connection is cut at the latest (see drain), so the
      // exchange is never left unrecorded.
      if (response.body === null || length !== null) {
        exchange.bytesOut = response.body === null ? 0 : Number(length);
        exchange.end("aborted");
      } else {
        this.#cutAnswers.add(exchange);
        final = new Response(observeBody(response.body, exchange, undefined, "aborted"), response);
      }
    } else if (
      this.#runtime.fastBodyPassthrough && length !== null &&
      // A small body whole already: handing it over is sending it. A file too, unless a recorded
      // server span must end at its last byte. A body still coming from the app is not: the app
      // can cut it, and its record must then say so (an error, with the reason) rather than a
      // complete answer, which Bun follows by printing the error with a source excerpt.
      (hasWholeBody(response) ? Number(length) <= PASSTHROUGH_MAX_BYTES : hasFileBody(response) && !exchange.trace?.recording)
    ) {
      // Decided without reading `body`, which makes Bun build a stream per response.
      exchange.bytesOut = bodyless(exchange.request.method, response.status) ? 0 : Number(length);
      exchange.end("complete");
    } else if (response.body === null) {
      exchange.end("complete");
      // A HEAD whose GET has a body of unknown length: sent without any length.
      if (length === null && exchange.request.method === "HEAD" && !bodyless("GET", response.status)) final = new Response(unsentBody(), response);
    } else if (this.#runtime.fastBodyPassthrough && length !== null && Number(length) <= PASSTHROUGH_MAX_BYTES) {
      // A small body still arriving: its first chunk decides (see firstChunkWhole).
      return firstChunkWhole(response, Number(length), exchange).then((whole) => this.#closing(whole));
    } else if (isEventStream(response.headers)) {
      this.#eventStreams.add(exchange);
      final = new Response(observeBody(response.body, exchange, new EventBoundary()), response);
    } else {
      final = new Response(observeBody(response.body, exchange), response);
    }
    return this.#closing(final);
  }

  /** Once the stop began, every response asks its client to close the connection. */
  #closing(response: Response): Response {
    return this.#connectionClose ? withHeader(response, "connection", "close") : response;
  }

  /**
   * Answers an upgrade the child accepted: 101 from the runtime, and the WebSocket counts as in
   * flight until it closes. A handshake the runtime refuses gets its error answer.
   */
  #upgrade(exchange: Exchange, { accept, goAway }: AcceptedUpgrade): Response | undefined {
    exchange.status = 101;
    this.#websockets.set(exchange, goAway);
    const answer = this.#listener!.upgradeWebSocket(exchange.request, accept);
    if (answer !== undefined && answer.status !== 101) {
      exchange.status = answer.status;
      accept.events.close(1006, ""); // never opened: the relay lets the child go and ends the exchange
    }
    return answer;
  }

  /** Runs when an exchange ends: leave the registry, run its pipeline's observers. */
  #onEnd = (exchange: Exchange): void => {
    if (this.#held.delete(exchange)) this.#listener!.releaseHold(exchange.request);
    else this.#holdLater?.delete(exchange);
    const slot = this.#inFlight.get(exchange)!;
    this.#inFlight.delete(exchange);
    this.#websockets.delete(exchange);
    this.#eventStreams.delete(exchange);
    this.#cutAnswers.delete(exchange);
    if (this.#inFlight.size === 0) this.#emptied?.();
    if (this.#endWatchers.size !== 0) for (const watch of this.#endWatchers) watch(exchange);
    for (const observe of slot.pipeline.onEnd) observe(exchange);
    if (--slot.inFlight === 0 && slot.retired) slot.pipeline.release();
  };
}
