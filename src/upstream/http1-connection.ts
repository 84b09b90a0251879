/**
 * @module Http1Connection: one keep-alive connection to the upstream, carrying one request
 * at a time. It is driven by the socket's events: the response head is parsed as bytes
 * arrive, and the body is handed over whole when it came with the head, or streamed.
 */

import type { Runtime, TcpSocket, TcpSocketEvents } from "../runtime/types.ts";
import type { AbortHook, UpstreamInit } from "./http1-client.ts";
import { concatBytes, indexOfBytes } from "../wire-bytes.ts";
import { markWholeBody, oneChunkStream } from "../whole-body.ts";
import {
  type BodyDecoder,
  ChunkedDecoder,
  cutShort,
  IDEMPOTENT_METHODS,
  LengthDecoder,
  malformed,
  parseLength,
  parseResponseHead,
  type ResponseHead,
  ResponseError,
  UntilCloseDecoder,
  UpstreamUnansweredError,
} from "./http1-wire.ts";

/** Where a URL's requests go, worked out once per origin. */
export interface Origin {
  /** "http://host:port", as the URL starts. */
  prefix: string;
  hostname: string;
  port: number;
  /** "hostname:port", the pool's key. */
  key: string;
  /** The Host header for requests without one. */
  host: string;
}

/** One request as the connection sends it. */
export interface OutgoingRequest {
  origin: Origin;
  method: string;
  /** The encoded request head. */
  head: Uint8Array;
  body: ReadableStream<Uint8Array> | null;
  /** The body goes chunked (its length is unknown); otherwise it is `length` bytes. */
  chunked: boolean;
  length: number | undefined;
  signal: AbortHook | undefined;
  /** The request asked to close the connection after it. */
  close: boolean;
  responseHeaders: UpstreamInit["responseHeaders"];
}

/** Where a connection goes back when its exchange is over. */
export interface ConnectionPool {
  /** Takes back a connection that can carry another request. */
  park(connection: Http1Connection): void;
  /** Sends a request again on a new connection: the pooled one it went out on had been closed by the upstream. */
  resend(request: OutgoingRequest): Promise<Response>;
  /** Ends a connection whose exchange is over cleanly (a FIN), never to carry another request. */
  retire(connection: Http1Connection): void;
  /** A reused connection closed before any byte of the answer: the upstream may have closed it for being idle too long. */
  closedUnanswered(connection: Http1Connection): void;
}

const HEAD_END = new Uint8Array([13, 10, 13, 10]);
const CRLF = new Uint8Array([13, 10]);
const LAST_CHUNK = new Uint8Array([48, 13, 10, 13, 10]); // "0\r\n\r\n"
/** Response body bytes buffered for a slow reader before the socket stops reading. */
const BODY_HIGH_WATER = 64 * 1024;
const encoder = new TextEncoder();
const noop = (): void => {};

type Phase = "idle" | "head" | "body";

export class Http1Connection implements TcpSocketEvents {
  /** Set once it went back to the pool: a failure before any response byte may then mean the upstream closed it while idle. */
  reused = false;
  /** When it last went back to the pool (performance.now()); kept while it carries a request. */
  idleSince = 0;
  /** When it was last taken from the pool. */
  takenAt = 0;
  /** Called when an idle connection closes (the pool forgets it). */
  onIdleClose: ((connection: Http1Connection) => void) | undefined;
  #socket!: TcpSocket;
  #closed = false;
  /** Ended by end(): it carries no more requests. */
  #ended = false;
  #phase: Phase = "idle";
  // The request in flight and what is known of its exchange.
  #request: OutgoingRequest | undefined;
  #resolve: ((response: Response | Promise<Response>) => void) | undefined;
  #reject: ((reason: unknown) => void) | undefined;
  #pool: ConnectionPool | undefined;
  #partialHead: Uint8Array | undefined;
  #decoder: BodyDecoder | undefined;
  #body: ReadableStreamDefaultController<Uint8Array> | undefined;
  #reusable = false;
  #paused = false;
  #responseStarted = false;
  #bodyStarted = false;
  #bodySent = false;
  #sendError: unknown;
  #drained: (() => void) | undefined;
  /** The request body's reader while it is being sent. */
  #bodyReader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  private constructor(readonly key: string, readonly maxHeaderBytes: number) {}

  static async open(connect: Runtime["connectTcp"], hostname: string, port: number, maxHeaderBytes: number): Promise<Http1Connection> {
    const connection = new Http1Connection(`${hostname}:${port}`, maxHeaderBytes);
    connection.#socket = await connect(hostname, port, connection);
    return connection;
  }

  /**
   * Sends `request` and resolves with the response once its head is in. When the exchange is
   * over, the connection goes back to `pool` if it can carry another request.
   */
  send(request: OutgoingRequest, pool: ConnectionPool): Promise<Response> {
    const { promise, resolve, reject } = Promise.withResolvers<Response>();
    this.#request = request;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#pool = pool;
    this.#phase = "head";
    this.#responseStarted = this.#bodyStarted = this.#bodySent = false;
    this.#sendError = undefined;
    if (this.#closed) {
      this.close(undefined);
      return promise;
    }
    request.signal?.addEventListener("abort", this.#onAbort);
    this.#socket.write(request.head);
    if (request.body === null) this.#bodySent = true;
    else {
      this.#bodyStarted = true;
      // Sent while the response is read: the upstream may answer (or refuse) before the body
      // ends. A failure closes the connection, so the upstream is not left waiting for the
      // rest; the response then fails with it as the cause.
      this.#sendBody(request).then(
        (sent) => void (sent && this.#request === request && (this.#bodySent = true)),
        (error) => {
          if (this.#request !== request) return;
          this.#sendError = error;
          this.destroy();
        },
      );
    }
    return promise;
  }

  destroy(): void {
    if (!this.#closed) this.#socket.destroy();
  }

  /** Closes an idle connection cleanly (FIN, not a reset, which apps log as an error). */
  end(): void {
    if (this.#closed || this.#phase !== "idle") return;
    this.#ended = true;
    this.#socket.end();
  }

  // ---------------------------------------------------------------- socket events

  data(bytes: Uint8Array): void {
    // Bytes nobody asked for: the framing went wrong. Once ended, nothing is asked any more, and
    // what still comes (a late body to a HEAD) is dropped.
    if (this.#phase === "idle") return this.#ended ? undefined : this.destroy();
    this.#responseStarted = true;
    try {
      if (this.#phase === "head") this.#readHead(bytes);
      else this.#readBody(bytes);
    } catch (error) {
      this.#fail(error);
    }
  }

  drain(): void {
    this.#drained?.();
    this.#drained = undefined;
  }

  close(error: Error | undefined): void {
    this.#closed = true;
    this.drain(); // a body waiting to send more learns it cannot
    switch (this.#phase) {
      case "idle":
        return this.onIdleClose?.(this);
      case "head": {
        if (this.reused && !this.#responseStarted) this.#pool!.closedUnanswered(this);
        // Closed by the upstream while it was idle, just before this request went out: safe to send again.
        const request = this.#request!;
        // Only an idempotent method (RFC 9110 section 9.2.2): the upstream may have taken the
        // request and then crashed or closed, and a POST must not run twice.
        if (this.reused && !this.#responseStarted && !this.#bodyStarted && !request.signal?.aborted && IDEMPOTENT_METHODS.has(request.method)) {
          const resolve = this.#resolve!;
          const pool = this.#pool!;
          this.#clear();
          return resolve(pool.resend(request));
        }
        if (this.#partialHead) return this.#fail(cutShort(this.key, "in the middle of the response head"), error);
        return this.#fail(cutShort(this.key, "before responding"), error, request.body === null);
      }
      case "body":
        // A reset is no end: the body was cut, and the client must see it cut.
        if (this.#decoder instanceof UntilCloseDecoder && error === undefined) {
          this.#body!.close();
          return this.#finish();
        }
        return this.#fail(cutShort(this.key, this.#decoder!.position), error);
    }
  }

  // ---------------------------------------------------------------- response

  #readHead(bytes: Uint8Array): void {
    let buffer = this.#partialHead === undefined ? bytes : concatBytes([this.#partialHead, bytes]);
    for (;;) {
      // Empty lines before a status line are skipped, as llhttp and HAProxy do: an app's stray
      // CRLF after its last response, written late, reaches the next request's connection.
      let start = 0;
      while (buffer[start] === 13 && buffer[start + 1] === 10) start += 2;
      if (start > 0) buffer = buffer.subarray(start);
      const end = indexOfBytes(buffer, HEAD_END, 0);
      if (end > this.maxHeaderBytes || (end === -1 && buffer.byteLength > this.maxHeaderBytes)) {
        throw malformed(this.key, `response head longer than ${this.maxHeaderBytes} bytes`);
      }
      if (end === -1) {
        // A head with bare LF line ends never ends by CRLF CRLF: refused now, not at --upstream-timeout.
        for (let lf = buffer.indexOf(10); lf !== -1; lf = buffer.indexOf(10, lf + 1)) {
          if (buffer[lf - 1] !== 13) throw malformed(this.key, "response head line ended by a bare LF");
        }
        this.#partialHead = buffer;
        return;
      }
      const head = parseResponseHead(buffer.subarray(0, end), this.key);
      buffer = buffer.subarray(end + HEAD_END.byteLength);
      if (head.status === 101) throw malformed(this.key, "101 Switching Protocols is not supported");
      if (head.status >= 200) {
        this.#partialHead = undefined;
        return this.#respond(head, buffer);
      }
      // 100 Continue and 103 Early Hints are skipped: the final response follows.
    }
  }

  /** Answers with the response whose head is in; `rest` is what came after the head. */
  #respond(head: ResponseHead, rest: Uint8Array): void {
    const request = this.#request!;
    this.#reusable = head.minor === "1" && !head.close && !request.close;
    const decoder = this.#bodyDecoder(head, request.method);
    request.responseHeaders?.(head.headers);
    const init: ResponseInit = { status: head.status, statusText: head.statusText, headers: head.headers };
    if (decoder === undefined) {
      if (rest.byteLength > 0) this.#reusable = false; // bytes after a bodiless response: the framing is off
      this.#resolve!(new Response(null, init));
      return this.#finish();
    }
    if (decoder instanceof LengthDecoder && rest.byteLength >= decoder.remaining) {
      // The whole body came with the head (the usual case for small responses): handed over
      // as bytes, which the server sends as fast as a body it never has to read.
      if (rest.byteLength > decoder.remaining) this.#reusable = false;
      const bytes = rest.subarray(0, decoder.remaining) as Uint8Array<ArrayBuffer>;
      this.#resolve!(markWholeBody(new Response(head.typed ? bytes : oneChunkStream(bytes), init)));
      return this.#finish();
    }
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => void (this.#body = controller),
      pull: () => {
        if (this.#decoder === decoder && this.#paused && !this.#closed) {
          this.#paused = false;
          this.#socket.resume();
        }
      },
      cancel: () => {
        if (this.#decoder === decoder) this.#abandon();
      },
    }, { highWaterMark: BODY_HIGH_WATER, size: (chunk?: Uint8Array) => chunk?.byteLength ?? 0 });
    const response = new Response(stream, init); // may throw (a status that cannot have a body): still the head phase
    const resolve = this.#resolve!;
    this.#phase = "body";
    this.#decoder = decoder;
    if (rest.byteLength > 0) {
      // The body bytes that came with the head are decoded before the response is handed over:
      // framing found wrong in them fails the response (a 502), instead of cutting one whose
      // head the client may never even get (Bun resets a stream that errors before its first chunk).
      try {
        this.#readBody(rest);
      } catch (error) {
        this.#phase = "head";
        throw error;
      }
    }
    resolve(response);
  }

  /**
   * How the body is framed (RFC 9112 section 6.3); undefined when there is none. Clears
   * `#reusable` when the connection cannot carry another request after it.
   */
  #bodyDecoder(head: ResponseHead, method: string): BodyDecoder | undefined {
    const { status, transferEncoding, contentLength } = head;
    if (method === "HEAD" || status === 204 || status === 304) return undefined;
    if (status === 205) {
      // 205 never has content (RFC 9110 section 15.3.6), and a Response with a body cannot be
      // made for it under Deno: any content announced is dropped with the connection.
      if (transferEncoding !== null || contentLength === null || parseLength(contentLength) !== 0) this.#reusable = false;
      return undefined;
    }
    if (transferEncoding !== null) {
      // Only chunked can be undone here: a body still gzip- or otherwise transfer-coded would
      // reach the client without the header that says so.
      if (!/^\s*chunked\s*$/i.test(transferEncoding)) throw malformed(this.key, `unsupported transfer-encoding "${transferEncoding.slice(0, 80)}"`);
      // Transfer-encoding wins over content-length (and then the connection is not trusted).
      if (contentLength !== null) {
        head.headers = head.headers.filter(([name]) => name.toLowerCase() !== "content-length");
        this.#reusable = false;
      }
      return new ChunkedDecoder(this.key, this.maxHeaderBytes);
    }
    if (contentLength !== null) {
      const length = parseLength(contentLength);
      if (length === undefined) throw malformed(this.key, `invalid content-length "${contentLength}"`);
      return length === 0 ? undefined : new LengthDecoder(length);
    }
    this.#reusable = false;
    return new UntilCloseDecoder();
  }

  #readBody(bytes: Uint8Array): void {
    const decoder = this.#decoder!;
    let used: number;
    try {
      used = decoder.decode(bytes, this.#emit);
    } finally {
      this.#flushParts();
    }
    if (decoder.done) {
      if (used < bytes.byteLength) this.#reusable = false;
      this.#body!.close();
      return this.#finish();
    }
    if ((this.#body!.desiredSize ?? 1) <= 0 && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  /**
   * The payload decoded from one read, handed on as one chunk: a chunked body of tiny chunks
   * (an app flushing every few bytes) would otherwise queue one object per chunk, each costing
   * far more than its bytes, while the queue's limit counts bytes alone: under Deno, a client
   * that read nothing of 1-byte chunks cost sluice 29-30 MiB, and 4-8 MiB as one per read.
   */
  #parts: Uint8Array[] = [];

  #emit = (payload: Uint8Array): void => void this.#parts.push(payload);

  #flushParts(): void {
    const parts = this.#parts;
    if (parts.length === 0) return;
    // Taken before enqueue, which may call pull: nothing is handed on twice. One part (a
    // Content-Length body, a chunk per read) reuses the array rather than making another.
    if (parts.length === 1) {
      const only = parts[0]!;
      parts.length = 0;
      this.#body!.enqueue(only);
    } else {
      this.#parts = [];
      let length = 0;
      for (const part of parts) length += part.byteLength;
      const whole = new Uint8Array(length);
      let offset = 0;
      for (const part of parts) {
        whole.set(part, offset);
        offset += part.byteLength;
      }
      this.#body!.enqueue(whole);
    }
  }

  // ---------------------------------------------------------------- endings

  /** The response has been read in full. */
  #finish(): void {
    // A response that ended before its request body was sent leaves the connection in an unknown state.
    const reusable = this.#reusable && this.#bodySent && !this.#closed;
    // An app that answers HEAD as it answers GET may write the body after the head: bytes that
    // the next request sent on the connection, another client's, would get as its answer (a
    // whole forged one, if they look like one). So a HEAD's connection carries nothing more;
    // it ends cleanly, and what comes after its answer is dropped.
    const head = this.#request!.method === "HEAD";
    const pool = this.#pool!;
    this.#clear();
    if (reusable && !head) pool.park(this);
    else if (reusable) pool.retire(this);
    else this.destroy();
  }

  /** The reader cancelled the body: the rest is not read, and the connection cannot be reused. */
  #abandon(): void {
    this.#clear();
    this.destroy();
  }

  /**
   * Ends the exchange with an error: the pending response rejects, or its body errors. The
   * reason is the signal's when it aborted; otherwise a TypeError, as fetch's network errors,
   * an UpstreamUnansweredError when `unanswered` (the connection ended before any answer to a
   * request sent without a body).
   */
  #fail(error: unknown, cause?: Error, unanswered = false): void {
    if (this.#phase === "idle") return;
    const request = this.#request!;
    let reason: unknown;
    if (request.signal?.aborted) reason = request.signal.reason;
    else if (error instanceof ResponseError && this.#sendError === undefined && cause === undefined && !unanswered) reason = error;
    else {
      const attempt = this.#phase === "head" ? "get a response from" : "read the response body from";
      const message = error instanceof ResponseError ? error.message : `Cannot ${attempt} upstream ${this.key}`;
      const ErrorClass = unanswered ? UpstreamUnansweredError : TypeError;
      reason = new ErrorClass(message, { cause: this.#sendError ?? cause ?? error });
    }
    if (this.#phase === "head") this.#reject!(reason);
    else this.#body!.error(reason);
    this.#clear();
    this.destroy();
  }

  #onAbort = (): void => this.#fail(this.#request?.signal?.reason);

  #clear(): void {
    this.#request?.signal?.removeEventListener("abort", this.#onAbort);
    // A body not all sent when the exchange ends is given up now, not when its next chunk
    // comes: a client that stopped sending once it had its answer sends none. Deno 2.9.6 then
    // kept the read pending and the client's connection open for good, neither reading the
    // rest nor closing it, once a streamed response had been sent (docs/runtime-notes.md).
    this.#bodyReader?.cancel().catch(noop);
    this.#bodyReader = undefined;
    this.#phase = "idle";
    this.#request = this.#resolve = this.#reject = this.#pool = undefined;
    this.#decoder = this.#body = this.#partialHead = undefined;
    if (this.#paused && !this.#closed) this.#socket.resume();
    this.#paused = false;
  }

  // ---------------------------------------------------------------- request body

  /**
   * Writes the request body as it comes, chunked or as its declared length, waiting for the
   * socket to drain when it is full. Resolves with false when the exchange ended first.
   */
  async #sendBody(request: OutgoingRequest): Promise<boolean> {
    const reader = request.body!.getReader();
    this.#bodyReader = reader;
    const { chunked, length } = request;
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.#request !== request || this.#closed) {
          reader.cancel().catch(noop); // the response came, or the exchange failed: the rest is not wanted
          return false;
        }
        if (done) break;
        total += value.byteLength;
        if (length !== undefined && total > length) {
          throw new TypeError(`Cannot send the request body: longer than its content-length ${length}`);
        }
        if (value.byteLength === 0) continue; // an empty chunk would end a chunked body
        const written = chunked
          ? this.#socket.write(concatBytes([encoder.encode(`${value.byteLength.toString(16)}\r\n`), value, CRLF]))
          : this.#socket.write(value);
        if (!written) await new Promise<void>((resolve) => (this.#drained = resolve));
      }
      if (chunked) this.#socket.write(LAST_CHUNK);
      else if (length !== undefined && total < length) {
        throw new TypeError(`Cannot send the request body: it ended after ${total} of ${length} bytes`);
      }
      return true;
    } catch (error) {
      reader.cancel(error).catch(noop);
      throw error;
    } finally {
      if (this.#bodyReader === reader) this.#bodyReader = undefined;
    }
  }
}
