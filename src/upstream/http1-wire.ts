/**
 * @module HTTP/1.1 on the wire for the upstream client (RFC 9112): request heads out,
 * response heads in, and the three ways a response body is framed.
 */

import { wireTarget } from "../request-target.ts";
import { latin1Decode, latin1Encode } from "../wire-bytes.ts";
import type { HeaderFields } from "./http1-client.ts";

/** A response that is malformed, too large or cut short: a TypeError, like fetch's network errors. */
export class ResponseError extends TypeError {}

/** Methods whose request may be sent again when no answer to it came (RFC 9110 section 9.2.2). */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/**
 * The upstream closed or reset the connection after the request went out without a body,
 * before any byte of an answer: it may have acted on the request, but told nothing of it.
 */
export class UpstreamUnansweredError extends TypeError {
  override name = "UpstreamUnansweredError";
}

export function malformed(key: string, what: string): ResponseError {
  return new ResponseError(`Cannot parse the response from upstream ${key}: ${what}`);
}

export function cutShort(key: string, where: string): ResponseError {
  return new ResponseError(`Upstream ${key} closed the connection ${where}`);
}

/** A content-length; repeated identical values ("5, 5") are allowed (RFC 9110 section 8.6). */
export function parseLength(value: string): number | undefined {
  if (/^\d{1,15}$/.test(value)) return Number(value);
  const values = new Set(value.split(",").map((v) => v.trim()));
  const [only = ""] = values;
  return values.size === 1 && /^\d{1,15}$/.test(only) ? Number(only) : undefined;
}

/** True when a comma-separated header value lists `token` (case-insensitive). */
export function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  for (const item of value.split(",")) if (item.trim().toLowerCase() === token) return true;
  return false;
}

/**
 * A request head. The target goes as wireTarget makes it (a space or control character in it
 * throws); the fields go as given, `host` first when given here (the request had none); the
 * body framing is the client's own: `transfer-encoding: chunked`, or one `content-length` (a
 * repeated "5, 5" goes as "5"); with no body framing, the fields' own `content-length` goes
 * as given. Values come from Headers or from the proxy's edits of them, so they hold no CR or LF.
 */
export function encodeRequestHead(
  method: string,
  target: string,
  host: string | undefined,
  fields: HeaderFields,
  bodyFraming: "chunked" | number | undefined,
): Uint8Array {
  let head = `${method} ${wireTarget(target)} HTTP/1.1\r\n`;
  if (host !== undefined) head += `host: ${host}\r\n`;
  for (const [name, value] of fields) {
    if (name.length === 17 && name.toLowerCase() === "transfer-encoding") continue;
    if (bodyFraming !== undefined && name.length === 14 && name.toLowerCase() === "content-length") continue;
    head += `${name}: ${value}\r\n`;
  }
  const framing = bodyFraming === undefined ? "" : bodyFraming === "chunked" ? "transfer-encoding: chunked\r\n" : `content-length: ${bodyFraming}\r\n`;
  return latin1Encode(`${head}${framing}\r\n`);
}

/** What a response head says, with the framing headers picked out. */
export interface ResponseHead {
  /** "1" for HTTP/1.1, "0" for HTTP/1.0. */
  minor: string;
  status: number;
  statusText: string;
  /** Every header as sent, but `transfer-encoding` (the body is passed on de-chunked). */
  headers: HeaderFields;
  contentLength: string | null;
  transferEncoding: string | null;
  /** It has a Content-Type with a value. */
  typed: boolean;
  /** The response asked to close the connection after it. */
  close: boolean;
}

// The reason phrase allows HTAB, SP, VCHAR and obs-text (RFC 9112 section 4), which Response also accepts.
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Never in a field value: controls but HTAB (RFC 9110 section 5.5), so no CR or LF outside the
 * line ends and no obs-fold either. Deno 2.9.6 panics, ending the process, when it writes one.
 */
// deno-lint-ignore no-control-regex -- matching controls is the point
const NOT_IN_VALUE = /[\0-\x08\n-\x1f\x7f]/;
const isBlank = (code: number): boolean => code === 32 || code === 9;

/** Parses a response head (without its final CRLF CRLF); throws a ResponseError naming what is wrong. */
export function parseResponseHead(bytes: Uint8Array, key: string): ResponseHead {
  const text = latin1Decode(bytes);
  let lineEnd = text.indexOf("\r\n");
  if (lineEnd === -1) lineEnd = text.length;
  const statusLine = text.slice(0, lineEnd);
  const status = STATUS_LINE.exec(statusLine);
  if (!status) throw malformed(key, `invalid status line "${statusLine.slice(0, 80)}"`);
  const head: ResponseHead = {
    minor: status[1]!,
    status: Number(status[2]),
    statusText: status[3] ?? "",
    headers: [],
    contentLength: null,
    transferEncoding: null,
    typed: false,
    close: false,
  };
  for (let at = lineEnd + 2; at <= text.length; at = lineEnd + 2) {
    lineEnd = text.indexOf("\r\n", at);
    if (lineEnd === -1) lineEnd = text.length;
    // A token, a colon, the value without the blanks around it.
    const colon = text.indexOf(":", at);
    const name = colon === -1 || colon > lineEnd ? "" : text.slice(at, colon);
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && isBlank(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isBlank(text.charCodeAt(valueEnd - 1))) valueEnd--;
    const value = text.slice(valueStart, valueEnd);
    if (!TOKEN.test(name) || NOT_IN_VALUE.test(value)) throw malformed(key, `invalid header line "${text.slice(at, Math.min(lineEnd, at + 80))}"`);
    // Only names of these lengths can be one of the four: most names are never lower-cased.
    switch (name.length === 10 || name.length === 12 || name.length === 14 || name.length === 17 ? name.toLowerCase() : "") {
      case "transfer-encoding":
        head.transferEncoding = head.transferEncoding === null ? value : `${head.transferEncoding}, ${value}`;
        continue; // not passed on
      case "content-length":
        head.contentLength = head.contentLength === null ? value : `${head.contentLength}, ${value}`;
        break;
      case "connection":
        head.close ||= hasToken(value, "close");
        break;
      case "content-type":
        head.typed ||= value !== ""; // an empty one counts as none (see hasContentType)
        break;
    }
    head.headers.push([name, value]);
  }
  return head;
}

/** Takes a response body's bytes as they arrive and hands on its payload. */
export interface BodyDecoder {
  /**
   * Passes the payload in `bytes` to `emit`; returns how many of `bytes` belong to this body
   * (fewer only when it ended inside them). Throws a ResponseError when the framing is wrong.
   */
  decode(bytes: Uint8Array, emit: (payload: Uint8Array) => void): number;
  /** True once the body's last byte has been decoded. */
  readonly done: boolean;
  /** Where the body stands, for the error when the connection closes before `done`. */
  readonly position: string;
}

/** A body of `content-length` bytes. */
export class LengthDecoder implements BodyDecoder {
  constructor(public remaining: number) {}

  get done(): boolean {
    return this.remaining === 0;
  }

  get position(): string {
    return `${this.remaining} bytes before the end of the body`;
  }

  decode(bytes: Uint8Array, emit: (payload: Uint8Array) => void): number {
    const taken = Math.min(this.remaining, bytes.byteLength);
    if (taken > 0) emit(taken === bytes.byteLength ? bytes : bytes.subarray(0, taken));
    this.remaining -= taken;
    return taken;
  }
}

/** A body that ends when the connection does (no length, no chunking). */
export class UntilCloseDecoder implements BodyDecoder {
  readonly done = false;
  /** Said only when the connection was reset: a clean close ends this body. */
  readonly position = "in the middle of the body (reset)";

  decode(bytes: Uint8Array, emit: (payload: Uint8Array) => void): number {
    emit(bytes);
    return bytes.byteLength;
  }
}

/** Where a chunked body's reader stands: a size line, chunk data, the CRLF after it, trailers, or the end. */
type ChunkedState = "size" | "data" | "data-end" | "trailers" | "done";

/** De-chunks (RFC 9112 section 7.1): chunk extensions and trailers are read and dropped. */
export class ChunkedDecoder implements BodyDecoder {
  #state: ChunkedState = "size";
  #left = 0;
  /** A line read in part (lines end with CRLF; a bare LF is refused). */
  #line = "";
  #trailers = 0;

  constructor(readonly key: string, readonly maxLine: number) {}

  get done(): boolean {
    return this.#state === "done";
  }

  get position(): string {
    return this.#state === "data" ? "in the middle of a chunk" : "in the middle of the chunked body";
  }

  decode(bytes: Uint8Array, emit: (payload: Uint8Array) => void): number {
    let at = 0;
    while (at < bytes.byteLength && this.#state !== "done") {
      if (this.#state === "data") {
        const taken = Math.min(this.#left, bytes.byteLength - at);
        emit(bytes.subarray(at, at + taken));
        at += taken;
        this.#left -= taken;
        if (this.#left === 0) this.#state = "data-end";
        continue;
      }
      const lf = bytes.indexOf(10, at);
      const end = lf === -1 ? bytes.byteLength : lf + 1;
      this.#line += latin1Decode(bytes.subarray(at, end));
      at = end;
      if (this.#line.length > this.maxLine) throw malformed(this.key, `chunked body line longer than ${this.maxLine} bytes`);
      if (lf !== -1) this.#endLine();
    }
    return at;
  }

  #endLine(): void {
    const line = this.#line;
    this.#line = "";
    if (!line.endsWith("\r\n")) throw malformed(this.key, "chunked body line not ended by CRLF");
    const text = line.slice(0, -2);
    switch (this.#state) {
      case "data-end":
        if (text !== "") throw malformed(this.key, "chunk data longer than its size");
        this.#state = "size";
        return;
      case "size": {
        const size = text.split(";")[0]!.trim();
        if (!/^[0-9a-f]{1,12}$/i.test(size)) throw malformed(this.key, `invalid chunk size "${size.slice(0, 40)}"`);
        this.#left = Number.parseInt(size, 16);
        this.#state = this.#left === 0 ? "trailers" : "data";
        return;
      }
      case "trailers":
        if (text === "") this.#state = "done";
        else if (++this.#trailers > 100) throw malformed(this.key, "more than 100 trailer lines");
        return;
    }
  }
}
