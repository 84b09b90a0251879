/** @module Http1Client: a small HTTP/1.1 client over a TcpConnection that passes headers and body bytes through exactly (Deno's fetch cannot). */

import type { TcpConnection } from "../runtime/types.ts";

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
const EMPTY = new Uint8Array(0);
const noop = () => {};

/** A response that breaks HTTP/1.1 syntax or limits, or ends early. A TypeError, like fetch's network errors. */
class ResponseError extends TypeError {}

/** A reused keep-alive connection that the upstream had closed while idle: safe to retry. */
class StaleConnectionError extends Error {}

/** The payload of a response body, read piece by piece. */
interface BodyReader {
  /** The next bytes of the payload, or null at its end. */
  next(): Promise<Uint8Array | null>;
  /** True once the end was read, so the stream can close without another pull. */
  done: boolean;
}

/** An HTTP/1.1 client with a keep-alive pool per host:port. Never decodes, never follows redirects. */
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
    const { signal, headers } = request;
    signal.throwIfAborted();
    // A given transfer-encoding means the runtime already de-chunked the body: chunk it again.
    const chunked = request.body !== null && (headers.has("transfer-encoding") || !headers.has("content-length"));
    const length = request.body !== null && !chunked ? parseLength(headers.get("content-length") ?? "") : undefined;
    if (request.body !== null && !chunked && length === undefined) {
      throw new TypeError(`Cannot send the request body: invalid content-length "${headers.get("content-length")}"`);
    }
    const head = encodeHead(request, url, chunked);
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const key = `${hostname}:${url.port || 80}`;
    for (let retry = false; ; retry = true) {
      const conn = (retry ? undefined : this.#takeIdle(key)) ?? (await this.#open(hostname, Number(url.port || 80), key, signal));
      try {
        return await this.#exchange(conn, request, head, length);
      } catch (error) {
        // Only a reused connection throws this, so the retry (always on a fresh one) happens at most once.
        if (!(error instanceof StaleConnectionError)) throw error;
      }
    }
  }

  /** Closes idle connections and their timers; connections in use close when their response ends. */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const conn of list) conn.destroy();
    this.#idle.clear();
  }

  async #open(hostname: string, port: number, key: string, signal: AbortSignal): Promise<Connection> {
    try {
      return new Connection(key, await abortable(this.#connect(hostname, port), signal));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw new TypeError(`Cannot connect to upstream ${key}`, { cause: error });
    }
  }

  async #exchange(conn: Connection, request: Request, head: Uint8Array, length: number | undefined): Promise<Response> {
    const { signal } = request;
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    let sent = request.body === null;
    let sendError: unknown;
    let finished = false;
    // Abort destroys the connection, which ends any pending read; each step then reports signal.reason.
    const onAbort = () => {
      conn.destroy();
      try {
        controller?.error(signal.reason);
      } catch {
        // The body already ended.
      }
    };
    signal.addEventListener("abort", onAbort);
    const finish = (reusable: boolean) => {
      if (finished) return;
      finished = true;
      signal.removeEventListener("abort", onAbort);
      // A response that ended before the request body was fully sent leaves the framing unknown.
      if (reusable && sent && !signal.aborted) this.#park(conn);
      else conn.destroy();
    };
    const fail = (error: unknown, attempt: string): unknown => {
      finish(false);
      if (signal.aborted) return signal.reason;
      if (error instanceof ResponseError) return sendError === undefined ? error : new ResponseError(error.message, { cause: sendError });
      return new TypeError(`Cannot ${attempt} upstream ${conn.key}`, { cause: sendError ?? error });
    };
    if (signal.aborted) throw fail(undefined, "send to");

    const bytesBefore = conn.bytesRead;
    const stale = () => conn.reused && !signal.aborted && conn.bytesRead === bytesBefore;
    try {
      await conn.write(head);
    } catch (error) {
      const wasStale = stale();
      const failure = fail(error, "send the request to");
      throw wasStale ? new StaleConnectionError() : failure;
    }
    if (request.body !== null) {
      // Sent concurrently with reading the response: the upstream may stream its answer (or refuse) early.
      sendBody(conn, request.body, length).then(
        () => (sent = true),
        (error) => {
          sendError = error;
          conn.destroy();
        },
      );
    }

    let parsed: Head | undefined;
    try {
      for (;;) {
        const bytes = await conn.readUntil(HEAD_END, this.#maxHeaderBytes, "response head");
        if (bytes === null) break;
        parsed = parseHead(bytes, conn.key);
        if (parsed.status === 101) throw new ResponseError(`Cannot use the response from upstream ${conn.key}: 101 Switching Protocols is not supported`);
        if (parsed.status >= 200) break; // 100 Continue, 103 Early Hints: interim, the real one follows
      }
      if (parsed === undefined || parsed.status < 200) {
        if (request.body === null && stale()) throw new StaleConnectionError();
        throw new ResponseError(`Upstream ${conn.key} closed the connection before responding`);
      }
    } catch (error) {
      const failure = fail(error, "read the response from");
      throw error instanceof StaleConnectionError ? error : failure;
    }

    const { version, status, statusText, headers } = parsed;
    let reusable = version === "1" && !hasToken(headers.get("connection"), "close") && !hasToken(request.headers.get("connection"), "close");
    // transfer-encoding is dropped: the body is the de-chunked payload, and the serving runtime frames it anew.
    // content-length and content-encoding are kept: they describe the bytes passed through.
    const transferEncoding = headers.get("transfer-encoding");
    const contentLength = headers.get("content-length");
    headers.delete("transfer-encoding");
    let body: BodyReader | null;
    if (request.method === "HEAD" || status === 204 || status === 304) body = null;
    else if (transferEncoding !== null) {
      if (transferEncoding.split(",").at(-1)?.trim().toLowerCase() === "chunked") {
        body = chunkedBody(conn, this.#maxHeaderBytes);
      } else {
        body = untilClose(conn); // RFC 9112 section 6.3: without a final "chunked" the body ends at close
        reusable = false;
      }
      if (contentLength !== null) {
        // Both framings: transfer-encoding wins, and the connection is not trusted again (RFC 9112 section 6.3).
        headers.delete("content-length");
        reusable = false;
      }
    } else if (contentLength !== null) {
      const size = parseLength(contentLength);
      if (size === undefined) throw fail(new ResponseError(`Cannot parse the response from upstream ${conn.key}: invalid content-length "${contentLength}"`), "read");
      body = size === 0 ? null : lengthBody(conn, size);
    } else {
      body = untilClose(conn);
      reusable = false;
    }

    let response: Response;
    const init = { status, statusText, headers };
    try {
      if (body === null) response = new Response(null, init);
      else {
        const reader = body;
        const stream = new ReadableStream<Uint8Array>(
          {
            start: (c) => void (controller = c),
            pull: async (c) => {
              try {
                const chunk = await reader.next();
                if (chunk !== null) c.enqueue(chunk);
                if (chunk === null || reader.done) {
                  c.close();
                  finish(reusable);
                }
              } catch (error) {
                c.error(fail(error, "read the response body from"));
              }
            },
            cancel: () => finish(false),
          },
          // Pull only when the consumer reads, so a slow client slows the upstream (TCP backpressure).
          { highWaterMark: 0 },
        );
        response = new Response(stream, init);
      }
    } catch (error) {
      throw fail(new ResponseError(`Cannot use the response from upstream ${conn.key}: ${String(error)}`), "read");
    }
    if (body === null) finish(reusable);
    return response;
  }

  #park(conn: Connection): void {
    const list = this.#idle.get(conn.key) ?? [];
    // Bytes after the end of a response mean the framing went wrong: never reuse such a connection.
    if (this.#closed || conn.buffered > 0 || list.length >= this.#maxIdlePerHost) return conn.destroy();
    list.push(conn);
    this.#idle.set(conn.key, list);
    conn.park(this.#idleTimeoutMs, () => {
      const current = this.#idle.get(conn.key);
      const index = current?.indexOf(conn) ?? -1;
      if (index !== -1) current?.splice(index, 1);
      if (current?.length === 0) this.#idle.delete(conn.key);
      conn.destroy();
    });
  }

  #takeIdle(key: string): Connection | undefined {
    const list = this.#idle.get(key);
    const conn = list?.pop(); // the most recently used one is the least likely to have been closed by the upstream
    if (list?.length === 0) this.#idle.delete(key);
    conn?.unpark();
    return conn;
  }
}

/** One TCP connection with a read buffer, so bytes after a delimiter stay for the next read. */
class Connection {
  /** True once it has been pooled: failing before any response byte may then mean the upstream closed it while idle. */
  reused = false;
  bytesRead = 0;
  readonly #tcp: TcpConnection;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buffer: Uint8Array = EMPTY;
  #pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #destroyed = false;

  constructor(
    readonly key: string,
    tcp: TcpConnection,
  ) {
    this.#tcp = tcp;
    this.#reader = tcp.readable.getReader();
    this.#writer = tcp.writable.getWriter();
  }

  get buffered(): number {
    return this.#buffer.length;
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.#writer.write(bytes);
  }

  /** The bytes before the next `delimiter` (consumed with it); null on EOF with nothing buffered. */
  async readUntil(delimiter: Uint8Array, max: number, what: string): Promise<Uint8Array | null> {
    for (let from = 0; ; from = Math.max(0, this.#buffer.length - delimiter.length + 1)) {
      const end = indexOf(this.#buffer, delimiter, from);
      if (end > max || (end === -1 && this.#buffer.length > max)) {
        throw new ResponseError(`Cannot parse the response from upstream ${this.key}: ${what} is longer than ${max} bytes`);
      }
      if (end !== -1) {
        const found = this.#buffer.subarray(0, end);
        this.#buffer = this.#buffer.subarray(end + delimiter.length);
        return found;
      }
      if (!(await this.#fill())) {
        if (this.#buffer.length === 0) return null;
        throw new ResponseError(`Upstream ${this.key} closed the connection in the middle of the ${what}`);
      }
    }
  }

  /** Up to `max` bytes, as soon as any are available (a view, never a copy); null on EOF. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (this.#buffer.length === 0 && !(await this.#fill())) return null;
    const bytes = this.#buffer.subarray(0, max);
    this.#buffer = this.#buffer.subarray(bytes.length);
    return bytes;
  }

  async #fill(): Promise<boolean> {
    for (;;) {
      const pending = this.#pending ?? this.#reader.read();
      this.#pending = undefined;
      const { done, value } = await pending;
      // After destroy() a pending read ends as EOF: report it as an error, never as a clean end.
      if (this.#destroyed) throw new Error(`Connection to upstream ${this.key} was closed`);
      if (done) return false;
      if (value.length === 0) continue;
      this.bytesRead += value.length;
      this.#buffer = this.#buffer.length === 0 ? value : concat([this.#buffer, value]);
      return true;
    }
  }

  /** Pools the connection: a read stays pending so an upstream close (or stray bytes) evicts it at once. */
  park(timeoutMs: number, evict: () => void): void {
    this.reused = true;
    this.#idleTimer = setTimeout(evict, timeoutMs);
    const pending = this.#reader.read();
    this.#pending = pending;
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
      this.#tcp.close();
    } catch {
      // Already closed by the runtime (e.g. Deno's BadResource): nothing left to release.
    }
    // Cancelling ends a pending read at once (WHATWG streams), whatever the runtime does with close().
    this.#reader.cancel().catch(noop);
    this.#writer.abort().catch(noop);
  }
}

async function sendBody(conn: Connection, body: ReadableStream<Uint8Array>, length: number | undefined): Promise<void> {
  const reader = body.getReader();
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value.length === 0) continue; // an empty chunk would read as the last chunk
      total += value.length;
      if (length === undefined) {
        // One write per chunk: size line, data and CRLF together (one syscall, not three).
        await conn.write(concat([latin1Encode(`${value.length.toString(16)}\r\n`), value, CRLF]));
      } else if (total > length) {
        throw new TypeError(`Cannot send the request body: it is longer than its content-length ${length}`);
      } else await conn.write(value); // awaiting each write is the backpressure
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
  const body: BodyReader = {
    done: false,
    async next() {
      const bytes = await conn.readSome(remaining);
      if (bytes === null) throw new ResponseError(`Upstream ${conn.key} closed the connection ${remaining} bytes before the end of the body`);
      remaining -= bytes.length;
      body.done = remaining === 0;
      return bytes;
    },
  };
  return body;
}

/** De-chunks (RFC 9112 section 7.1): extensions and trailers are read and dropped. */
function chunkedBody(conn: Connection, maxLine: number): BodyReader {
  let left = 0;
  let first = true;
  const line = async (what: string) => {
    const bytes = await conn.readUntil(CRLF, maxLine, what);
    if (bytes === null) throw new ResponseError(`Upstream ${conn.key} closed the connection before the end of the chunked body`);
    return latin1Decode(bytes);
  };
  const body: BodyReader = {
    done: false,
    async next() {
      if (left === 0) {
        if (!first && (await line("chunk")) !== "") throw new ResponseError(`Cannot parse the response from upstream ${conn.key}: chunk data longer than its size`);
        first = false;
        const size = (await line("chunk size line")).split(";")[0]!.trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw new ResponseError(`Cannot parse the response from upstream ${conn.key}: invalid chunk size "${size.slice(0, 40)}"`);
        left = Number.parseInt(size, 16);
        if (left === 0) {
          for (let total = 0; (await line("trailer")) !== ""; total++) {
            if (total > 100) throw new ResponseError(`Cannot parse the response from upstream ${conn.key}: more than 100 trailer lines`);
          }
          body.done = true;
          return null;
        }
      }
      const bytes = await conn.readSome(left);
      if (bytes === null) throw new ResponseError(`Upstream ${conn.key} closed the connection in the middle of a chunk`);
      left -= bytes.length;
      return bytes;
    },
  };
  return body;
}

function untilClose(conn: Connection): BodyReader {
  return { done: false, next: () => conn.readSome(Number.POSITIVE_INFINITY) };
}

interface Head {
  /** The minor version: "0" or "1". */
  version: string;
  status: number;
  statusText: string;
  headers: Headers;
}

function parseHead(bytes: Uint8Array, key: string): Head {
  const [statusLine = "", ...lines] = latin1Decode(bytes).split("\r\n");
  const match = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(statusLine);
  const status = Number(match?.[2]);
  if (!match || status < 100 || status > 599) {
    throw new ResponseError(`Cannot parse the response from upstream ${key}: invalid status line "${statusLine.slice(0, 80)}"`);
  }
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    try {
      // Headers rejects names that are not tokens (so obs-fold lines) and values with CR, LF or NUL.
      if (colon <= 0) throw new Error("no colon");
      headers.append(line.slice(0, colon), line.slice(colon + 1));
    } catch {
      throw new ResponseError(`Cannot parse the response from upstream ${key}: invalid header line "${line.slice(0, 80)}"`);
    }
  }
  return { version: match[1]!, status, statusText: match[3] ?? "", headers };
}

function encodeHead(request: Request, url: URL, chunked: boolean): Uint8Array {
  let head = `${request.method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  if (!request.headers.has("host")) head += `host: ${url.host}\r\n`;
  for (const [name, value] of request.headers) {
    if (name === "transfer-encoding" || (chunked && name === "content-length")) continue;
    head += `${name}: ${value}\r\n`;
  }
  if (chunked) head += "transfer-encoding: chunked\r\n";
  return latin1Encode(`${head}\r\n`);
}

/** A content-length value; repeated identical values ("5, 5") are allowed (RFC 9110 section 8.6). */
function parseLength(value: string): number | undefined {
  const values = new Set(value.split(",").map((v) => v.trim()));
  const [only] = values;
  if (values.size !== 1 || !/^\d{1,15}$/.test(only!)) return undefined;
  return Number(only);
}

function hasToken(value: string | null, token: string): boolean {
  return value?.split(",").some((t) => t.trim().toLowerCase() === token) ?? false;
}

/** Rejects with signal.reason on abort; a value that arrives later is closed. */
function abortable(promise: Promise<TcpConnection>, signal: AbortSignal): Promise<TcpConnection> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (tcp) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) tcp.close();
        else resolve(tcp);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  for (let i = haystack.indexOf(needle[0]!, from); i !== -1; i = haystack.indexOf(needle[0]!, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let k = 1;
    while (k < needle.length && haystack[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Header bytes are Latin-1 on the wire and in Headers (ByteString); TextDecoder's "latin1" is windows-1252. */
function latin1Decode(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return text;
}

function latin1Encode(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}
