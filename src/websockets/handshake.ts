/**
 * @module The upstream half of a WebSocket upgrade: the HTTP/1.1 handshake with the child
 * (RFC 6455 section 4.1) over a plain TCP connection. The child's answer is either 101, and
 * the connection carries frames from then on, or any other response, which the client gets
 * as the child sent it.
 */

import { removeHopByHop } from "../forwarded-headers.ts";
import { wireTarget } from "../request-target.ts";
import type { TcpConnection } from "../runtime/types.ts";
import { concatBytes, indexOfBytes, latin1Decode, latin1Encode } from "../wire-bytes.ts";

const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const HEAD_END = [13, 10, 13, 10];
/** Largest response head accepted from the child. */
const MAX_HEAD_BYTES = 64 * 1024;
/** Largest body of a refused upgrade passed on (it is read whole: such answers are short). */
const MAX_REFUSAL_BODY_BYTES = 1024 * 1024;
/** Headers of the 101 that belong to the handshake itself; the client's runtime makes its own. */
const HANDSHAKE_HEADERS = ["sec-websocket-accept", "sec-websocket-protocol", "sec-websocket-extensions", "date", "content-length"];

export interface UpstreamHandshake {
  connect: (hostname: string, port: number) => Promise<TcpConnection>;
  hostname: string;
  port: number;
  /** Path and query. */
  target: string;
  /** The request headers for the child (forwarded headers set; hop-by-hop removed). */
  headers: Headers;
  signal: AbortSignal;
}

export type HandshakeResult =
  | { upgraded: true; protocol: string | undefined; headers: Headers; tcp: TcpConnection; reader: ReadableStreamDefaultReader<Uint8Array>; leftover: Uint8Array }
  | { upgraded: false; response: Response };

/** Malformed or unacceptable answers from the child (a 502). */
export class HandshakeError extends Error {
  override name = "HandshakeError";
}

/** Connects to the child and asks it to upgrade; rejects with `signal.reason` when aborted. */
export async function upstreamHandshake({ connect, hostname, port, target, headers, signal }: UpstreamHandshake): Promise<HandshakeResult> {
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  headers.set("connection", "upgrade");
  headers.set("upgrade", "websocket");
  headers.set("sec-websocket-key", key);
  headers.set("sec-websocket-version", "13");
  headers.delete("sec-websocket-extensions"); // frames pass through sluice's own reader: no compression
  // It goes without a body (Bun drops a GET's): a length announced for none would make the
  // child wait for bytes that never come (a 504), or take the first frame's start for them.
  headers.delete("content-length");
  const tcp = await abortable(connect(hostname, port), signal);
  const reader = tcp.readable.getReader();
  const onAbort = (): void => {
    tcp.close();
    reader.cancel().catch(() => {});
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const writer = tcp.writable.getWriter();
    await writer.write(latin1Encode(requestHead(target, `${hostname}:${port}`, headers)));
    writer.releaseLock();
    let bytes: Uint8Array = new Uint8Array(0);
    for (;;) {
      const head = await readHead(reader, bytes);
      const parsed = parseHead(head.head);
      bytes = head.rest;
      if (parsed.status === 101) return await accepted(parsed.headers, key, tcp, reader, bytes);
      if (parsed.status >= 200) return { upgraded: false, response: await refusal(parsed, reader, bytes, tcp) };
      // 100 Continue and 103 Early Hints: the final answer follows.
    }
  } catch (error) {
    tcp.close();
    throw signal.aborted ? signal.reason : error;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function requestHead(target: string, authority: string, headers: Headers): string {
  let head = `GET ${wireTarget(target)} HTTP/1.1\r\n`;
  if (!headers.has("host")) head += `host: ${authority}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

async function accepted(
  headers: Headers,
  key: string,
  tcp: TcpConnection,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  leftover: Uint8Array,
): Promise<HandshakeResult> {
  if (!/(^|,)\s*websocket\s*(,|$)/i.test(headers.get("upgrade") ?? "")) throw new HandshakeError("101 from the child without Upgrade: websocket");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + ACCEPT_GUID)));
  if (headers.get("sec-websocket-accept") !== btoa(String.fromCharCode(...digest))) {
    throw new HandshakeError("101 from the child with a wrong Sec-WebSocket-Accept");
  }
  if (headers.has("sec-websocket-extensions")) throw new HandshakeError("the child chose an extension that was not offered");
  const protocol = headers.get("sec-websocket-protocol") ?? undefined;
  removeHopByHop(headers);
  for (const name of HANDSHAKE_HEADERS) headers.delete(name);
  return { upgraded: true, protocol, headers, tcp, reader, leftover };
}

/** The child's non-101 answer as a Response (hop-by-hop headers removed); the connection is closed. */
async function refusal(
  { status, statusText, headers }: ReturnType<typeof parseHead>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  buffered: Uint8Array,
  tcp: TcpConnection,
): Promise<Response> {
  const chunked = /(^|,)\s*chunked\s*$/i.test(headers.get("transfer-encoding") ?? "");
  const length = headers.get("content-length");
  let body: Uint8Array | null = null;
  if (status !== 204 && status !== 304) {
    const raw = await readBody(reader, buffered, chunked ? undefined : length === null ? Infinity : Number(length), chunked);
    body = chunked ? dechunk(raw) : raw;
  }
  tcp.close();
  removeHopByHop(headers);
  headers.delete("content-length");
  return new Response(body as Uint8Array<ArrayBuffer> | null, { status, statusText, headers });
}

/** The body's bytes: `length` of them, up to the chunked body's end, or up to EOF (Infinity). */
async function readBody(reader: ReadableStreamDefaultReader<Uint8Array>, buffered: Uint8Array, length: number | undefined, chunked: boolean): Promise<Uint8Array> {
  let bytes = buffered;
  const complete = (): boolean => (chunked ? endsChunked(bytes) : bytes.byteLength >= (length ?? 0));
  while (!complete()) {
    if (bytes.byteLength > MAX_REFUSAL_BODY_BYTES) throw new HandshakeError(`refusal body over ${MAX_REFUSAL_BODY_BYTES} bytes`);
    const { done, value } = await reader.read();
    if (done) {
      if (length === Infinity) break;
      throw new HandshakeError("the child closed the connection in the middle of its answer");
    }
    bytes = concatBytes([bytes, value]);
  }
  return length !== undefined && Number.isFinite(length) ? bytes.subarray(0, length) : bytes;
}

function endsChunked(bytes: Uint8Array): boolean {
  try {
    dechunk(bytes);
    return true;
  } catch {
    return false;
  }
}

/** The payload of a complete chunked body (RFC 9112 section 7.1); throws when it is incomplete. */
function dechunk(bytes: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; ;) {
    const lineEnd = indexOfBytes(bytes, [13, 10], at);
    if (lineEnd === -1) throw new HandshakeError("incomplete chunked body");
    const size = parseInt(latin1Decode(bytes.subarray(at, lineEnd)).split(";")[0]!.trim(), 16);
    if (Number.isNaN(size)) throw new HandshakeError("invalid chunk size");
    at = lineEnd + 2;
    if (size === 0) {
      if (indexOfBytes(bytes, HEAD_END, lineEnd) === -1 && indexOfBytes(bytes, [13, 10], at) !== at) throw new HandshakeError("incomplete chunked body");
      return concatBytes(parts);
    }
    if (bytes.byteLength < at + size + 2) throw new HandshakeError("incomplete chunked body");
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

async function readHead(reader: ReadableStreamDefaultReader<Uint8Array>, buffered: Uint8Array): Promise<{ head: Uint8Array; rest: Uint8Array }> {
  let bytes = buffered;
  for (;;) {
    const end = indexOfBytes(bytes, HEAD_END, 0);
    if (end !== -1) return { head: bytes.subarray(0, end), rest: bytes.subarray(end + 4) };
    if (bytes.byteLength > MAX_HEAD_BYTES) throw new HandshakeError(`response head over ${MAX_HEAD_BYTES} bytes`);
    const { done, value } = await reader.read();
    if (done) throw new HandshakeError("the child closed the connection before answering the upgrade");
    bytes = concatBytes([bytes, value]);
  }
}

function parseHead(bytes: Uint8Array) {
  const [statusLine = "", ...lines] = latin1Decode(bytes).split("\r\n");
  const match = /^HTTP\/1\.[01] ([1-5]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(statusLine);
  if (!match) throw new HandshakeError(`invalid status line "${statusLine.slice(0, 80)}"`);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    try {
      headers.append(colon > 0 ? line.slice(0, colon) : " ", line.slice(colon + 1).trim());
    } catch {
      throw new HandshakeError(`invalid header line "${line.slice(0, 80)}"`);
    }
  }
  return { status: Number(match[1]), statusText: match[2] ?? "", headers };
}

function abortable(connecting: Promise<TcpConnection>, signal: AbortSignal): Promise<TcpConnection> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    connecting
      .then((tcp) => (signal.aborted ? tcp.close() : resolve(tcp)), reject)
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}
