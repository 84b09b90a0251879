/**
 * @module Http1Client: the upstream client. HTTP/1.1 over the runtime's TCP sockets, with a
 * keep-alive pool; it passes headers and bytes through exactly (never decodes, adds only
 * `host` when absent, never follows redirects). Both runtimes use it: Deno's fetch decodes
 * gzip and drops a given Host, and Bun's costs a thread hop per request (docs/runtime-notes.md).
 */

import { Deadlines } from "../deadlines.ts";
import type { Runtime } from "../runtime/types.ts";
import { type ConnectionPool, Http1Connection, type Origin, type OutgoingRequest } from "./http1-connection.ts";
import { encodeRequestHead, hasToken, parseLength } from "./http1-wire.ts";

/**
 * What the client uses of an AbortSignal (which is one): whether and why it aborted, and one
 * listener at a time. The proxy passes its exchange itself, which costs no AbortController.
 */
export interface AbortHook {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** Header fields in order, as [name, value] pairs (names in lower case where a proxy builds them). */
export type HeaderFields = [string, string][];

/** What an upstream request is made of (a Request object per request would cost more). */
export interface UpstreamInit {
  method?: string;
  /** Sent as given, in order; `host` is added when absent. */
  headers?: Headers | HeaderFields;
  body?: ReadableStream<Uint8Array> | null;
  signal?: AbortHook | undefined;
  /**
   * Edits the response's header fields, as received, before its Response is made: cheaper
   * than editing the Response's Headers afterwards.
   */
  responseHeaders?: ((fields: HeaderFields) => void) | undefined;
}

/**
 * Upstream requests: bytes pass through undecoded, the given Host header is sent, and
 * redirects are returned, never followed.
 */
export type UpstreamFetch = (url: string, init?: UpstreamInit) => Promise<Response>;

export interface Http1ClientOptions {
  /** The runtime's TCP connect. */
  connect: Runtime["connectTcp"];
  /** Idle keep-alive connections kept per host:port. @default 64 */
  maxIdlePerHost?: number;
  /**
   * Idle connections older than this are closed: below the usual servers' own keep-alive
   * timeouts (gunicorn's threaded workers 2 s, Node and uvicorn 5 s, Puma 20 s), so the
   * upstream seldom closes one just as it is reused; a new connection to the child costs far
   * less than a request lost so. An upstream that closes idle connections sooner is learned
   * from the first one it closes: see KEEP_ALIVE_MARGIN.
   * @default 1500 (ms)
   */
  idleTimeoutMs?: number;
  /** Largest response head (status line + headers) accepted. @default 65536 */
  maxHeaderBytes?: number;
}

const MAX_ORIGINS = 64;

/**
 * An upstream that closed an idle connection after t ms closes its others at about t too:
 * from then on a connection idle for more than this share of the shortest such t is not
 * reused (it is ended, and the request goes on a new one). Reusing it would race the
 * upstream's own close, which wins when the request arrives just as it closes: the request
 * is then lost unanswered, and a POST, which may not be sent again, gets 502 (gunicorn
 * --threads with its 2 s keep-alive, a POST every 2 s). The margin covers the time the close
 * takes to be seen here when the event loop is busy.
 */
const KEEP_ALIVE_MARGIN = 0.75;
/** Idle closes sooner than this are not taken for a keep-alive timeout: a crash or a restart closes connections of any age. */
const MIN_LEARNED_KEEP_ALIVE_MS = 250;
/** A reused connection closed unanswered this soon after it was taken was most likely closed for its idle time. */
const UNANSWERED_AT_ONCE_MS = 250;

/** The upstream could not be connected to (refused, unreachable): nothing of the request was sent. */
export class UpstreamConnectError extends TypeError {
  override name = "UpstreamConnectError";
}

export class Http1Client implements ConnectionPool {
  readonly #connect: Runtime["connectTcp"];
  readonly #maxIdlePerHost: number;
  readonly #maxHeaderBytes: number;
  readonly #idle = new Map<string, Http1Connection[]>();
  readonly #idleTimeouts: Deadlines<Http1Connection>;
  /** Connections ended cleanly (FIN) whose upstream has not closed its side yet: reset when it never does. */
  readonly #ending: Deadlines<Http1Connection>;
  readonly #origins = new Map<string, Origin>();
  /** Per host:port, how long an idle connection may be reused, learned from the upstream's own idle closes. */
  readonly #reuseLimits = new Map<string, number>();
  #closed = false;

  constructor({ connect, maxIdlePerHost = 64, idleTimeoutMs = 1500, maxHeaderBytes = 65536 }: Http1ClientOptions) {
    this.#connect = connect;
    this.#maxIdlePerHost = maxIdlePerHost;
    this.#maxHeaderBytes = maxHeaderBytes;
    this.#idleTimeouts = new Deadlines(idleTimeoutMs, (connection) => {
      this.#forget(connection);
      this.#end([connection]);
    });
    this.#ending = new Deadlines(idleTimeoutMs, (connection) => connection.destroy());
  }

  /** Sends a request to an http: URL; resolves with the response once its head is in. */
  fetch(url: string, init: UpstreamInit = {}): Promise<Response> {
    let request: OutgoingRequest;
    try {
      request = this.#prepare(url, init);
    } catch (error) {
      return Promise.reject(error);
    }
    const pooled = this.#takeIdle(request.origin.key);
    return pooled ? pooled.send(request, this) : this.resend(request);
  }

  /** Sends on a new connection (ConnectionPool: also the retry when a pooled one turned out closed). */
  resend(request: OutgoingRequest): Promise<Response> {
    if (request.signal?.aborted) return Promise.reject(request.signal.reason);
    return this.#open(request.origin, request.signal).then((connection) => connection.send(request, this));
  }

  #prepare(url: string, { method = "GET", headers = [], body = null, signal, responseHeaders }: UpstreamInit): OutgoingRequest {
    const origin = this.#origin(url);
    if (signal?.aborted) throw signal.reason;
    const fields = headers instanceof Headers ? fieldsOf(headers) : headers;
    const framing = requestFraming(fields);
    // A given transfer-encoding means the serving runtime already de-chunked the body: chunk it again.
    const chunked = body !== null && (framing.transferEncoding || framing.contentLength === undefined);
    const length = body === null || chunked ? undefined : parseLength(framing.contentLength!);
    if (body !== null && !chunked && length === undefined) {
      throw new TypeError(`Cannot send the request body: invalid content-length "${framing.contentLength}"`);
    }
    const hash = url.indexOf("#");
    const target = url.slice(origin.prefix.length, hash === -1 ? url.length : hash);
    return {
      origin,
      method,
      head: encodeRequestHead(method, target.startsWith("/") ? target : `/${target}`, framing.hasHost ? undefined : origin.host, fields, chunked ? "chunked" : body !== null ? length : unsentLength(framing.contentLength)),
      body,
      chunked,
      length,
      signal,
      close: framing.close,
      responseHeaders,
    };
  }

  /**
   * Ends the idle connections to hostname:port, which no request will use again (a child
   * about to stop, which could otherwise wait for them to close).
   */
  closeIdle(hostname: string, port: number): void {
    const key = `${hostname}:${port}`;
    this.#end(this.#idle.get(key) ?? []);
    this.#idle.delete(key);
  }

  /**
   * Ends the idle connections, and keeps none from now on: connections in use close when
   * their response ends.
   */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) this.#end(list);
    this.#idle.clear();
  }

  /**
   * Ends idle connections cleanly (FIN, not a reset, which apps log as an error: Python's
   * http.server prints a traceback); one whose upstream does not close its side in turn is
   * reset after idleTimeoutMs.
   */
  #end(idle: Http1Connection[]): void {
    for (const connection of idle) {
      connection.onIdleClose = this.#ended;
      this.#idleTimeouts.delete(connection);
      this.#ending.add(connection);
      connection.end();
    }
  }

  #ended = (connection: Http1Connection): void => this.#ending.delete(connection);

  #origin(url: string): Origin {
    if (!url.startsWith("http://")) throw new TypeError(`Cannot fetch ${url}: only http: URLs are supported`);
    let end = url.length;
    for (const delimiter of ["/", "?", "#"]) {
      const at = url.indexOf(delimiter, 7);
      if (at !== -1 && at < end) end = at;
    }
    const prefix = url.slice(0, end);
    let origin = this.#origins.get(prefix);
    if (origin === undefined) {
      const parsed = new URL(prefix);
      const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
      const port = Number(parsed.port || 80);
      origin = { prefix, hostname, port, key: `${hostname}:${port}`, host: parsed.host };
      if (this.#origins.size >= MAX_ORIGINS) this.#origins.clear();
      this.#origins.set(prefix, origin);
    }
    return origin;
  }

  async #open({ hostname, port, key }: Origin, signal: AbortHook | undefined): Promise<Http1Connection> {
    const opening = Http1Connection.open(this.#connect, hostname, port, this.#maxHeaderBytes);
    try {
      return await (signal ? abortable(opening, signal) : opening);
    } catch (error) {
      throw signal?.aborted ? signal.reason : new UpstreamConnectError(`Cannot connect to upstream ${key}`, { cause: error });
    }
  }

  /** Ends a connection whose exchange is over cleanly, as an idle one is (ConnectionPool). */
  retire(connection: Http1Connection): void {
    this.#end([connection]);
  }

  /** Takes back a connection whose exchange is over, or closes it when the pool has no room (ConnectionPool). */
  park(connection: Http1Connection): void {
    const list = this.#idle.get(connection.key) ?? [];
    if (this.#closed || list.length >= this.#maxIdlePerHost) return this.#end([connection]);
    connection.reused = true;
    connection.idleSince = performance.now();
    connection.onIdleClose = this.#closedIdle;
    list.push(connection);
    this.#idle.set(connection.key, list);
    this.#idleTimeouts.add(connection);
  }

  #takeIdle(key: string): Http1Connection | undefined {
    const list = this.#idle.get(key);
    const connection = list?.pop(); // the most recently used one is the least likely to have been closed upstream
    if (connection === undefined) return undefined;
    const now = performance.now();
    const limit = this.#reuseLimits.get(key);
    if (limit !== undefined && now - connection.idleSince > limit) {
      // Idle about as long as the upstream keeps connections: it may be closing this one
      // now. The others were parked before it, so they are older still.
      this.#end([connection, ...list!]);
      this.#idle.delete(key);
      return undefined;
    }
    connection.onIdleClose = undefined;
    this.#idleTimeouts.delete(connection);
    connection.takenAt = now;
    return connection;
  }

  /**
   * A reused connection closed unanswered at once (ConnectionPool): most likely the upstream
   * closed it for its idle time just as the request went out, the race the reuse limit avoids.
   */
  closedUnanswered(connection: Http1Connection): void {
    if (performance.now() - connection.takenAt < UNANSWERED_AT_ONCE_MS) this.#learn(connection.key, connection.takenAt - connection.idleSince);
  }

  /** The upstream closed an idle connection: its keep-alive timeout may be shorter than ours. */
  #closedIdle = (connection: Http1Connection): void => {
    this.#learn(connection.key, performance.now() - connection.idleSince);
    this.#forget(connection);
  };

  /** The upstream at `key` closed a connection idle for `idle` ms: reuse none idle that long again. */
  #learn(key: string, idle: number): void {
    if (idle < MIN_LEARNED_KEEP_ALIVE_MS) return;
    const limit = idle * KEEP_ALIVE_MARGIN;
    const known = this.#reuseLimits.get(key);
    if (known !== undefined && known <= limit) return;
    if (known === undefined && this.#reuseLimits.size >= MAX_ORIGINS) this.#reuseLimits.clear();
    this.#reuseLimits.set(key, limit);
  }

  /** An idle connection closed (by the upstream, or its idle time ran out). */
  #forget = (connection: Http1Connection): void => {
    this.#idleTimeouts.delete(connection);
    const list = this.#idle.get(connection.key);
    const index = list?.indexOf(connection) ?? -1;
    if (index !== -1) list!.splice(index, 1);
    if (list?.length === 0) this.#idle.delete(connection.key);
  };
}

function fieldsOf(headers: Headers): HeaderFields {
  const fields: HeaderFields = [];
  headers.forEach((value, name) => void fields.push([name, value]));
  return fields;
}

/**
 * The framing for a request sent without a body that still declares a length: a GET or HEAD
 * sent with one, whose body both runtimes read and drop (`request.body` is null). Announcing
 * bytes never sent would make the app take the start of the next request on the connection
 * for them; it gets `content-length: 0` instead, as it does for a 0 given twice (the runtimes
 * take "0, 0", a list no sender may send: RFC 9110 section 8.6). Undefined (the fields go as
 * given) otherwise.
 */
function unsentLength(contentLength: string | undefined): 0 | undefined {
  return contentLength === undefined || /^0+$/.test(contentLength) ? undefined : 0;
}

/** What the request's own header fields say about its framing and its connection. */
function requestFraming(fields: HeaderFields) {
  let hasHost = false;
  let contentLength: string | undefined;
  let transferEncoding = false;
  let close = false;
  for (const [name, value] of fields) {
    // Only names of these lengths can matter: most are never lower-cased.
    switch (name.length === 4 || name.length === 10 || name.length === 14 || name.length === 17 ? name.toLowerCase() : "") {
      case "host":
        hasHost = true;
        break;
      case "content-length":
        contentLength = contentLength === undefined ? value : `${contentLength}, ${value}`;
        break;
      case "transfer-encoding":
        transferEncoding = true;
        break;
      case "connection":
        close ||= hasToken(value, "close");
        break;
    }
  }
  return { hasHost, contentLength, transferEncoding, close };
}

/** The connection, or signal.reason if the signal aborts first (a connection that arrives later is closed). */
function abortable(opening: Promise<Http1Connection>, signal: AbortHook): Promise<Http1Connection> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort);
    opening
      .then((connection) => (signal.aborted ? connection.destroy() : resolve(connection)), reject)
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}
