/**
 * @module WebSocket frames as a client writes and reads them (RFC 6455 section 5): masked
 * frames out, whole messages in (fragments joined, control frames passed as they come).
 */

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** A protocol violation by the server: the connection closes with `code`. */
export class WebSocketProtocolError extends Error {
  override name = "WebSocketProtocolError";
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export type IncomingMessage =
  /** `byteLength`: the text's size as sent (UTF-8). */
  | { kind: "text"; data: string; byteLength: number }
  | { kind: "binary"; data: Uint8Array }
  | { kind: "ping" | "pong"; data: Uint8Array }
  | { kind: "close"; code: number; reason: string };

const encoder = new TextEncoder();
/**
 * `ignoreBOM`: a leading U+FEFF is part of the text, not a byte order mark to drop (the
 * default decoder dropped it: a child's "\uFEFFx" reached the client as "x").
 */
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** One frame, masked as a client must (section 5.3), unfragmented unless `fin` is false. */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const length = payload.byteLength;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + lengthBytes + 4 + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  frame[1] = 0x80 | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  const view = new DataView(frame.buffer);
  if (lengthBytes === 2) view.setUint16(2, length);
  else if (lengthBytes === 8) view.setBigUint64(2, BigInt(length));
  const maskAt = 2 + lengthBytes;
  crypto.getRandomValues(frame.subarray(maskAt, maskAt + 4));
  const mask = frame.subarray(maskAt, maskAt + 4);
  const out = frame.subarray(maskAt + 4);
  for (let i = 0; i < length; i++) out[i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

/** A Close frame; 1005 (no code) sends an empty one. The reason is cut to 123 bytes, at a character boundary. */
export function encodeClose(code: number, reason: string): Uint8Array {
  if (code === 1005) return encodeFrame(Opcode.close, new Uint8Array(0));
  const text = truncateUtf8(reason, 123);
  const payload = new Uint8Array(2 + text.byteLength);
  new DataView(payload.buffer).setUint16(0, code);
  payload.set(text, 2);
  return encodeFrame(Opcode.close, payload);
}

/** At most `max` bytes of UTF-8, never half a character. */
export function truncateUtf8(text: string, max: number): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.byteLength <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back to the start of a character
  return bytes.subarray(0, end);
}

/** Codes a Close frame may carry (section 7.4): never 1004-1006 or 1015, nothing below 1000 or above 4999. */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

function parseClose(payload: Uint8Array): IncomingMessage {
  if (payload.byteLength === 0) return { kind: "close", code: 1005, reason: "" };
  if (payload.byteLength === 1) throw new WebSocketProtocolError(1002, "Close frame with a 1-byte payload");
  const code = new DataView(payload.buffer, payload.byteOffset).getUint16(0);
  if (!validCloseCode(code)) throw new WebSocketProtocolError(1002, `invalid close code ${code}`);
  return { kind: "close", code, reason: decodeText(payload.subarray(2)) };
}

function decodeText(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new WebSocketProtocolError(1007, "text that is not valid UTF-8");
  }
}

/** Reads whole messages from a server's byte stream. */
export class MessageReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #maxMessageBytes: number;
  #chunks: Uint8Array[];
  #available: number;
  /**
   * A message in progress: its opcode, its first fragment as read, and once a second one comes,
   * all of them copied into one buffer that grows up to the message size limit. Never an array
   * entry per fragment: empty ones count nothing against that limit, so a child sending them
   * without end grew memory without bound (some 130 bytes for each 2-byte frame).
   */
  #fragmentOpcode = 0;
  #firstFragment: Uint8Array | undefined;
  #joined: Uint8Array | undefined;
  #fragmentBytes = 0;

  /** `leftover`: bytes read past the handshake's response head. */
  constructor(reader: ReadableStreamDefaultReader<Uint8Array>, leftover: Uint8Array, maxMessageBytes: number) {
    this.#reader = reader;
    this.#chunks = leftover.byteLength > 0 ? [leftover] : [];
    this.#available = leftover.byteLength;
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** The next message or control frame; null when the server closed the connection between frames. */
  async next(): Promise<IncomingMessage | null> {
    for (;;) {
      if (!(await this.#fill(1))) return null;
      const head = await this.#take(2);
      const first = head[0]!;
      const second = head[1]!;
      const fin = (first & 0x80) !== 0;
      const opcode = first & 0x0f;
      if ((first & 0x70) !== 0) throw new WebSocketProtocolError(1002, "reserved bits set without an extension");
      if ((second & 0x80) !== 0) throw new WebSocketProtocolError(1002, "masked frame from the server");
      const length = await this.#payloadLength(second & 0x7f, opcode, fin);
      const payload = await this.#take(length);
      const message = this.#assemble(opcode, fin, payload);
      if (message) return message;
    }
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }

  async #payloadLength(short: number, opcode: number, fin: boolean): Promise<number> {
    let length = short;
    if (short >= 126) {
      length = 0; // big-endian, 2 or 8 bytes; past 2^53 only "too large" matters
      for (const byte of await this.#take(short === 126 ? 2 : 8)) length = length * 256 + byte;
    }
    if (opcode >= 8 && (!fin || length > 125)) throw new WebSocketProtocolError(1002, "fragmented or oversized control frame");
    if (opcode < 8 && this.#fragmentBytes + length > this.#maxMessageBytes) {
      throw new WebSocketProtocolError(1009, `message over ${this.#maxMessageBytes} bytes`);
    }
    return length;
  }

  #assemble(opcode: number, fin: boolean, payload: Uint8Array): IncomingMessage | undefined {
    switch (opcode) {
      case Opcode.close:
        return parseClose(payload);
      case Opcode.ping:
        return { kind: "ping", data: payload };
      case Opcode.pong:
        return { kind: "pong", data: payload };
      case Opcode.text:
      case Opcode.binary:
        if (this.#fragmentOpcode !== 0) throw new WebSocketProtocolError(1002, "new message before the previous one ended");
        this.#fragmentOpcode = opcode;
        break;
      case Opcode.continuation:
        if (this.#fragmentOpcode === 0) throw new WebSocketProtocolError(1002, "continuation frame without a message");
        break;
      default:
        throw new WebSocketProtocolError(1002, `unknown opcode ${opcode}`);
    }
    this.#addFragment(payload);
    if (!fin) return undefined;
    const data = this.#joined?.subarray(0, this.#fragmentBytes) ?? this.#firstFragment!;
    const kind = this.#fragmentOpcode;
    this.#firstFragment = undefined;
    this.#joined = undefined;
    this.#fragmentBytes = 0;
    this.#fragmentOpcode = 0;
    return kind === Opcode.text ? { kind: "text", data: decodeText(data), byteLength: data.byteLength } : { kind: "binary", data };
  }

  /** Adds a fragment to the message in progress (#payloadLength kept the total within the limit). */
  #addFragment(payload: Uint8Array): void {
    if (this.#firstFragment === undefined) {
      this.#firstFragment = payload;
      this.#fragmentBytes = payload.byteLength;
      return;
    }
    if (payload.byteLength === 0) return;
    const total = this.#fragmentBytes + payload.byteLength;
    if (this.#joined === undefined || this.#joined.byteLength < total) {
      const grown = new Uint8Array(Math.min(this.#maxMessageBytes, Math.max(total, 2 * (this.#joined?.byteLength ?? 0), 4096)));
      grown.set(this.#joined?.subarray(0, this.#fragmentBytes) ?? this.#firstFragment);
      this.#joined = grown;
    }
    this.#joined.set(payload, this.#fragmentBytes);
    this.#fragmentBytes = total;
  }

  /** Reads until `count` bytes are buffered; false on EOF before. */
  async #fill(count: number): Promise<boolean> {
    while (this.#available < count) {
      const { done, value } = await this.#reader.read();
      if (done) return false;
      if (value.byteLength === 0) continue;
      this.#chunks.push(value);
      this.#available += value.byteLength;
    }
    return true;
  }

  /** The next `count` bytes: a view when one chunk holds them, else one copy. */
  async #take(count: number): Promise<Uint8Array> {
    if (!(await this.#fill(count))) throw new WebSocketProtocolError(1006, "connection closed in the middle of a frame");
    this.#available -= count;
    const head = this.#chunks[0];
    if (head !== undefined && head.byteLength >= count) {
      if (head.byteLength === count) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(count);
      return head.subarray(0, count);
    }
    const out = new Uint8Array(count);
    for (let filled = 0; filled < count;) {
      const chunk = this.#chunks[0]!;
      const part = Math.min(chunk.byteLength, count - filled);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (part === chunk.byteLength) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(part);
    }
    return out;
  }
}
