/** @module Http1Client: a small HTTP/1.1 client over a TcpConnection that passes headers and bytes through exactly. */

import type { TcpConnection } from "../runtime/types.ts";
import { concatBytes, indexOfBytes, latin1Decode, latin1Encode } from "../wire-bytes.ts";

export interface Http1ClientOptions {
  /** Opens a TCP connection; rejects (e.g. connection refused) with the runtime's error. */
  connect: (hostname: string, port: number) => Promise<TcpConnection>;
  /** Idle keep-alive connections kept per host:port. @default 64 */
  maxIdlePerHost?: number;
  /** Idle connections older than this are closed. @default 4000 (ms) */
  idleTimeoutMs?: number;
  /** Largest response head (status line + headers) accepted. @default 65536 */
  maxHeaderBytes?: number;
}

const CRLF = new Uint8Array([13, 10]);
const HEAD_END = new Uint8Array([13, 10, 13, 10]);
const LAST_CHUNK = new Uint8Array([48, 13, 10, 13, 10]); // "0\r\n\r\n"
const noop = () => {};

/** A response that is malformed, too large or cut short: a TypeError, like fetch's network errors. */
class ResponseError extends TypeError {}

/** A pooled connection the upstream closed while it was idle: the request is safe to retry. */
class StaleConnectionError extends Error {}

/** Reads a response body's payload piece by piece: the next bytes, or null at its end. */
type BodyReader = () => Promise<Uint8Array | null>;

/**
 * An HTTP/1.1 client for upstream requests. It adds no header but `host` (when absent) and body framing, never
 * decodes, never follows redirects. Deno's fetch decodes gzip/br and drops a given Host, so sluice uses this there.
 */
export class Http1Client {
  readonly #connect: Http1ClientOptions["connect"];
  readonly #maxIdlePerHost: number;
  readonly #idleTimeoutMs: number;
  readonly #maxHeaderBytes: number;
  readonly #idle = new Map<string, Connection[]>();
  #closed = false;

  constructor({ connect, maxIdlePerHost = 64, idleTimeoutMs = 4000, maxHeaderBytes = 65536 }: Http1ClientOptions) {
    this.#connect = connect;
    this.#maxIdlePerHost = maxIdlePerHost;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#maxHeaderBytes = maxHeaderBytes;
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.protocol !== "http:") throw new TypeError(`Cannot fetch ${url.href}: only http: URLs are supported`);
    request.signal.throwIfAborted();
    const { headers, body } = request;
    // A given transfer-encoding means the serving runtime already de-chunked the body: chunk it again.
    const chunked = body !== null && (headers.has("transfer-encoding") || !headers.has("content-length"));
    const length = body === null || chunked ? undefined : parseLength(headers.get("content-length")!);
    if (body !== null && !chunked && length === undefined) {
      throw new TypeError(`Cannot send the request body: invalid content-length "${headers.get("content-length")}"`);
    }
    const head = encodeHead(request, url, chunked);
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(url.port || 80);
    // Only a pooled connection can be stale, and the retry always opens a fresh one: at most one retry.
    for (let retry = false; ; retry = true) {
      const pooled = retry ? undefined : this.#takeIdle(`${hostname}:${port}`);
      const conn = pooled ?? (await this.#open(hostname, port, request.signal));
      try {
        return await this.#exchange(conn, request, head, length);
      } catch (error) {
        if (!(error instanceof StaleConnectionError)) throw error;
      }
    }
  }

  /** Closes idle connections (clearing their timers); connections in use close when their response ends. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const conn of list) conn.destroy();
    this.#idle.clear();
  }

  async #open(hostname: string, port: number, signal: AbortSignal): Promise<Connection> {
    const key = `${hostname}:${port}`;
    const tcp = await abortable(this.#connect(hostname, port), signal).catch((error: unknown) => {
      throw signal.aborted ? signal.reason : new TypeError(`Cannot connect to upstream ${key}`, { cause: error });
    });
    return new Connection(key, tcp);
  }

  async #exchange(conn: Connection, request: Request, head: Uint8Array, length?: number): Promise<Response> {
    const { signal } = request;
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    let sent = request.body === null;
    let sendError: unknown;
    let finished = false;
    let bodyStarted = false;
    // Abort destroys the connection, which ends any pending read; the step that was reading reports signal.reason.
    const onAbort = () => {
      conn.destroy();
      try {
        controller?.error(signal.reason);
      } catch {
        // The body had already ended.
      }
    };
    signal.addEventListener("abort", onAbort);
    const finish = (reusable: boolean) => {
      if (finished) return;
      finished = true;
      signal.removeEventListener("abort", onAbort);
      // If the response ended before the request body was fully sent, the connection's state is unknown.
      if (reusable && sent && !signal.aborted) this.#park(conn);
      else conn.destroy();
    };
    const fail = (error: unknown, attempt: string): unknown => {
      finish(false);
      if (signal.aborted) return signal.reason;
      if (error instanceof ResponseError && sendError === undefined) return error;
      const message = error instanceof ResponseError ? error.message : `Cannot ${attempt} upstream ${conn.key}`;
      return new TypeError(message, { cause: sendError ?? error });
    };

    const bytesBefore = conn.bytesRead;
    let parsed: ReturnType<typeof parseHead> | undefined;
    try {
      signal.throwIfAborted();
      await conn.write(head);
      if (request.body !== null) {
        bodyStarted = true;
        // Sent while the response is read: the upstream may answer (or refuse) before the body ends.
        // A failure (the source errored, a wrong length, a failed write) closes the connection, so the upstream is
        // not left waiting for the rest; the response read then fails with that failure as its cause.
        sendBody(conn, request.body, length).then(
          () => void (sent = true),
          (error) => void ((sendError = error), conn.destroy()),
        );
      }
      while (parsed === undefined || parsed.status < 200) {
        const bytes = await conn.readUntil(HEAD_END, this.#maxHeaderBytes, "response head");
        if (bytes === null) throw cutShort(conn.key, "before responding");
        parsed = parseHead(bytes, conn.key); // 100 Continue and 103 Early Hints are skipped: the final one follows
        if (parsed.status === 101) throw malformed(conn.key, "101 Switching Protocols is not supported");
      }
    } catch (error) {
      const stale = conn.reused && !bodyStarted && !signal.aborted && conn.bytesRead === bytesBefore;
      const failure = fail(error, "get a response from");
      throw stale ? new StaleConnectionError() : failure;
    }

    const { status, statusText, headers } = parsed;
    let framing: ReturnType<typeof responseFraming>;
    try {
      framing = responseFraming(conn, request, parsed, this.#maxHeaderBytes);
    } catch (error) {
      throw fail(error, "read");
    }
    const { body, reusable } = framing;
    if (body === null) {
      finish(reusable);
      return new Response(null, { status, statusText, headers });
    }
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => void (controller = c),
        async pull(c) {
          try {
            const chunk = await body();
            if (chunk !== null) return c.enqueue(chunk);
            c.close();
            finish(reusable);
          } catch (error) {
            c.error(fail(error, "read the response body from"));
          }
        },
        cancel: () => finish(false),
      },
      { highWaterMark: 0 }, // read from the socket only when the consumer reads: a slow client slows the upstream
    );
    return new Response(stream, { status, statusText, headers });
  }

  #park(conn: Connection): void {
    const list = this.#idle.get(conn.key) ?? [];
    // Bytes after the end of a response mean the framing went wrong: never reuse such a connection.
    if (this.#closed || conn.buffered > 0 || list.length >= this.#maxIdlePerHost) return conn.destroy();
    list.push(conn);
    this.#idle.set(conn.key, list);
    conn.park(this.#idleTimeoutMs, () => {
      const index = list.indexOf(conn);
      if (index !== -1) list.splice(index, 1);
      if (list.length === 0 && this.#idle.get(conn.key) === list) this.#idle.delete(conn.key);
      conn.destroy();
    });
  }

  #takeIdle(key: string): Connection | undefined {
    const list = this.#idle.get(key);
    const conn = list?.pop(); // the most recently used one is the least likely to have been closed upstream
    if (list?.length === 0) this.#idle.delete(key);
    conn?.unpark();
    return conn;
  }
}

/** One TCP connection with a read buffer (bytes after a delimiter stay for the next read) and its pool state. */
class Connection {
  /** Set once pooled: a failure before any response byte may then mean the upstream closed it while idle. */
  reused = false;
  bytesRead = 0;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buffer = new Uint8Array(0) as Uint8Array;
  #pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #destroyed = false;

  constructor(
    readonly key: string,
    readonly tcp: TcpConnection,
  ) {
    this.#reader = tcp.readable.getReader();
    this.#writer = tcp.writable.getWriter();
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  /** Resolves when the runtime took the bytes: awaiting it is the backpressure. */
  write(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes);
  }

  /** The bytes before the next `delimiter` (consumed with it); null on EOF with nothing buffered. */
  async readUntil(delimiter: Uint8Array, max: number, what: string): Promise<Uint8Array | null> {
    for (let from = 0; ; ) {
      const end = indexOfBytes(this.#buffer, delimiter, from);
      if (end > max || (end === -1 && this.#buffer.length > max)) {
        throw malformed(this.key, `${what} longer than ${max} bytes`);
      }
      if (end !== -1) {
        const found = this.#buffer.subarray(0, end);
        this.#buffer = this.#buffer.subarray(end + delimiter.length);
        return found;
      }
      from = Math.max(0, this.#buffer.length - delimiter.length + 1); // rescan only where a match can start
      if (await this.#fill()) continue;
      if (this.#buffer.length === 0) return null;
      throw cutShort(this.key, `in the middle of the ${what}`);
    }
  }

  /** Up to `max` bytes, as soon as any are available (a view of what the socket gave, never a copy); null on EOF. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#buffer.length === 0 && !(await this.#fill())) return null;
    const bytes = this.#buffer.subarray(0, max);
    this.#buffer = this.#buffer.subarray(bytes.length);
    return bytes;
  }

  /** Appends the next chunk read to the buffer; false on EOF. */
  async #fill(): Promise<boolean> {
    for (;;) {
      const pending = this.#pending ?? this.#reader.read();
      this.#pending = undefined;
      const { done, value } = await pending;
      // After destroy() a pending read ends as EOF: report that as an error, never as the end of a body.
      if (this.#destroyed) throw new Error(`Connection to upstream ${this.key} was closed`);
      if (done) return false;
      if (value.length === 0) continue;
      this.bytesRead += value.length;
      this.#buffer = this.#buffer.length === 0 ? value : concatBytes([this.#buffer, value]);
      return true;
    }
  }

  /** Marks the connection idle: a read stays pending so an upstream close (or stray bytes) evicts it at once. */
  park(timeoutMs: number, evict: () => void): void {
    this.reused = true;
    this.#idleTimer = setTimeout(evict, timeoutMs);
    const pending = (this.#pending = this.#reader.read());
    const onSettled = () => void (this.#idleTimer !== undefined && evict());
    pending.then(onSettled, onSettled);
  }

  unpark(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.unpark();
    try {
      this.tcp.close();
    } catch {
      // Already closed by the runtime (e.g. Deno's BadResource).
    }
    // Cancelling ends a pending read at once (WHATWG streams), whatever the runtime does on close().
    this.#reader.cancel().catch(noop);
    this.#writer.abort().catch(noop);
  }
}

async function sendBody(conn: Connection, body: ReadableStream<Uint8Array>, length?: number): Promise<void> {
  const reader = body.getReader();
  let total = 0;
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      const chunk = read.value;
      total += chunk.length;
      if (length !== undefined && total > length) {
        throw new TypeError(`Cannot send the request body: longer than its content-length ${length}`);
      }
      // A chunk's size line, data and CRLF go in one write (one syscall); an empty chunk would end the body.
      if (length !== undefined) await conn.write(chunk);
      else if (chunk.length > 0) await conn.write(concatBytes([latin1Encode(`${chunk.length.toString(16)}\r\n`), chunk, CRLF]));
    }
    if (length === undefined) await conn.write(LAST_CHUNK);
    else if (total < length) throw new TypeError(`Cannot send the request body: it ended after ${total} of ${length} bytes`);
  } catch (error) {
    reader.cancel(error).catch(noop);
    throw error;
  }
}

function lengthBody(conn: Connection, length: number): BodyReader {
  let remaining = length;
  return async () => {
    if (remaining === 0) return null;
    const bytes = await conn.readSome(remaining);
    if (bytes === null) throw cutShort(conn.key, `${remaining} bytes before the end of the body`);
    remaining -= bytes.length;
    return bytes;
  };
}

/** De-chunks (RFC 9112 section 7.1): chunk extensions and trailers are read and dropped. */
function chunkedBody(conn: Connection, maxLine: number): BodyReader {
  let left = 0;
  let state: "first" | "more" | "done" = "first";
  const line = async (what: string) => {
    const bytes = await conn.readUntil(CRLF, maxLine, what);
    if (bytes === null) throw cutShort(conn.key, "in the middle of the chunked body");
    return latin1Decode(bytes);
  };
  return async () => {
    if (state === "done") return null;
    if (left === 0) {
      if (state === "more" && (await line("chunk")) !== "") throw malformed(conn.key, "chunk data longer than its size");
      state = "more";
      const size = (await line("chunk size line")).split(";")[0]!.trim();
      if (!/^[0-9a-f]{1,12}$/i.test(size)) throw malformed(conn.key, `invalid chunk size "${size.slice(0, 40)}"`);
      left = Number.parseInt(size, 16);
      if (left === 0) {
        for (let count = 0; (await line("trailer")) !== ""; count++) {
          if (count === 100) throw malformed(conn.key, "more than 100 trailer lines");
        }
        state = "done";
        return null;
      }
    }
    const bytes = await conn.readSome(left);
    if (bytes === null) throw cutShort(conn.key, "in the middle of a chunk");
    left -= bytes.length;
    return bytes;
  };
}

/**
 * How the response body is framed, and whether the connection can carry another request afterwards.
 * Kept: content-length and content-encoding, which describe the bytes passed through. Dropped: transfer-encoding,
 * as the body is the de-chunked payload and the serving runtime frames it anew.
 */
function responseFraming(conn: Connection, request: Request, head: ReturnType<typeof parseHead>, maxLine: number) {
  const { headers, status } = head;
  let reusable = head.minor === "1" && !hasClose(headers) && !hasClose(request.headers);
  const transferEncoding = headers.get("transfer-encoding");
  const contentLength = headers.get("content-length");
  headers.delete("transfer-encoding");
  let body: BodyReader | null = () => conn.readSome(Number.POSITIVE_INFINITY); // until EOF
  if (request.method === "HEAD" || status === 204 || status === 304) body = null;
  else if (transferEncoding !== null) {
    // RFC 9112 section 6.3: transfer-encoding wins over content-length (and then the connection is not trusted);
    // without a final "chunked", the body ends at EOF.
    if (/(^|,)\s*chunked\s*$/i.test(transferEncoding)) body = chunkedBody(conn, maxLine);
    else reusable = false;
    if (contentLength !== null) headers.delete("content-length");
    reusable &&= contentLength === null;
  } else if (contentLength !== null) {
    const size = parseLength(contentLength);
    if (size === undefined) throw malformed(conn.key, `invalid content-length "${contentLength}"`);
    body = size === 0 ? null : lengthBody(conn, size);
  } else reusable = false;
  return { body, reusable };
}

function parseHead(bytes: Uint8Array, key: string) {
  const [statusLine = "", ...lines] = latin1Decode(bytes).split("\r\n");
  // The reason phrase allows HTAB, SP, VCHAR and obs-text (RFC 9112 section 4), which Response also accepts.
  const match = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(statusLine);
  if (!match) throw malformed(key, `invalid status line "${statusLine.slice(0, 80)}"`);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    try {
      // Headers rejects names that are not tokens (so obs-fold lines too) and values with CR, LF or NUL;
      // a line without a name gets " ", which is not a token either.
      headers.append(colon > 0 ? line.slice(0, colon) : " ", line.slice(colon + 1));
    } catch {
      throw malformed(key, `invalid header line "${line.slice(0, 80)}"`);
    }
  }
  return { minor: match[1]!, status: Number(match[2]), statusText: match[3] ?? "", headers };
}

function encodeHead(request: Request, url: URL, chunked: boolean): Uint8Array {
  let head = `${request.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  if (!request.headers.has("host")) head += `host: ${url.host}\r\n`;
  for (const [name, value] of request.headers) {
    if (name !== "transfer-encoding" && !(chunked && name === "content-length")) head += `${name}: ${value}\r\n`;
  }
  return latin1Encode(`${head}${chunked ? "transfer-encoding: chunked\r\n" : ""}\r\n`);
}

function malformed(key: string, what: string): ResponseError {
  return new ResponseError(`Cannot parse the response from upstream ${key}: ${what}`);
}

function cutShort(key: string, where: string): ResponseError {
  return new ResponseError(`Upstream ${key} closed the connection ${where}`);
}

/** A content-length; repeated identical values ("5, 5") are allowed (RFC 9110 section 8.6). */
function parseLength(value: string): number | undefined {
  const values = new Set(value.split(",").map((v) => v.trim()));
  const [only = ""] = values;
  return values.size === 1 && /^\d{1,15}$/.test(only) ? Number(only) : undefined;
}

function hasClose(headers: Headers): boolean {
  return /(^|,)\s*close\s*(,|$)/i.test(headers.get("connection") ?? "");
}

/** The connection, or signal.reason if the signal aborts first (a connection that arrives later is closed). */
function abortable(connecting: Promise<TcpConnection>, signal: AbortSignal): Promise<TcpConnection> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    connecting
      .then((tcp) => (signal.aborted ? tcp.close() : resolve(tcp)), reject)
      .catch(reject) // tcp.close() threw: nothing left to release
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}
