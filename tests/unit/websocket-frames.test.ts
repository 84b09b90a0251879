/** @module The WebSocket frame codec and the event-stream boundary rule, byte by byte. */

import { describe, expect, test } from "bun:test";
import { EventBoundary } from "../../src/event-stream.ts";
import { encodeClose, encodeFrame, MessageReader, Opcode, WebSocketProtocolError } from "../../src/websockets/frames.ts";

/** Unmasked frames as a server sends them. */
function serverFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const length = payload.byteLength;
  const head = length < 126 ? [opcode | (fin ? 0x80 : 0), length] : length < 65536
    ? [opcode | (fin ? 0x80 : 0), 126, length >> 8, length & 0xff]
    : [opcode | (fin ? 0x80 : 0), 127, 0, 0, 0, 0, (length >>> 24) & 0xff, (length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff];
  const frame = new Uint8Array(head.length + length);
  frame.set(head);
  frame.set(payload, head.length);
  return frame;
}

/** A reader over `bytes` delivered in pieces of `piece` bytes. */
function readerOf(bytes: Uint8Array, piece: number, max = 1 << 20): MessageReader {
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.byteLength) return controller.close();
      controller.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
  return new MessageReader(stream.getReader(), new Uint8Array(0), max);
}

const text = (s: string) => new TextEncoder().encode(s);

describe("frames", () => {
  test("a masked client frame unmasks to its payload, with 7-, 16- and 64-bit lengths", () => {
    for (const length of [5, 300, 70_000]) {
      const payload = crypto.getRandomValues(new Uint8Array(length));
      const frame = encodeFrame(Opcode.binary, payload);
      const offset = length < 126 ? 2 : length < 65536 ? 4 : 10;
      expect(frame[0]).toBe(0x82);
      expect(frame[1]! & 0x80).toBe(0x80);
      const mask = frame.subarray(offset, offset + 4);
      const unmasked = frame.subarray(offset + 4).map((byte, i) => byte ^ mask[i & 3]!);
      expect(unmasked).toEqual(payload);
    }
  });

  test("fragments join, control frames in between come first, any split of the bytes reads the same", async () => {
    const bytes = new Uint8Array([
      ...serverFrame(Opcode.text, text("hé"), false),
      ...serverFrame(Opcode.ping, text("p")),
      ...serverFrame(Opcode.continuation, text("llo")),
      ...serverFrame(Opcode.binary, new Uint8Array(70_000).fill(3)),
      ...serverFrame(Opcode.close, new Uint8Array([0x0f, 0xa1, ...text("bye")])),
    ]);
    for (const piece of [1, 7, 1 << 20]) {
      const reader = readerOf(bytes, piece);
      expect(await reader.next()).toEqual({ kind: "ping", data: text("p") });
      expect(await reader.next()).toEqual({ kind: "text", data: "héllo", byteLength: 6 });
      expect(((await reader.next()) as { data: Uint8Array }).data).toEqual(new Uint8Array(70_000).fill(3));
      expect(await reader.next()).toEqual({ kind: "close", code: 4001, reason: "bye" });
      expect(await reader.next()).toBeNull();
    }
  });

  test("protocol errors carry their close code", async () => {
    const cases: [Uint8Array, number][] = [
      [serverFrame(Opcode.text, new Uint8Array([0xff])), 1007],
      [serverFrame(Opcode.binary, new Uint8Array(2000)), 1009],
      [serverFrame(Opcode.continuation, text("x")), 1002],
      [serverFrame(Opcode.close, new Uint8Array([0x03, 0xed])), 1002], // 1005 is never sent
    ];
    for (const [bytes, code] of cases) {
      const error = await readerOf(bytes, 64, 1000).next().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WebSocketProtocolError);
      expect((error as WebSocketProtocolError).code).toBe(code);
    }
  });

  test("a Close frame's reason is cut to 123 bytes at a character boundary; 1005 sends none", () => {
    const close = encodeClose(1001, "é".repeat(100));
    expect(close[1]! & 0x7f).toBe(2 + 122);
    expect(encodeClose(1005, "ignored")[1]! & 0x7f).toBe(0);
  });
});

describe("event-stream boundaries", () => {
  const after = (...chunks: string[]) => {
    const boundary = new EventBoundary();
    for (const chunk of chunks) boundary.observe(text(chunk));
    return boundary.atBoundary;
  };
  test("between events with LF, CR or CRLF line ends; never inside one", () => {
    expect(after()).toBe(true);
    expect(after("data: a\n\n")).toBe(true);
    expect(after("data: a\n", "\n")).toBe(true);
    expect(after("data: a\r\n\r\n")).toBe(true);
    expect(after("data: a\r\r")).toBe(true);
    expect(after("data: a\n\r\n")).toBe(true);
    expect(after(": keepalive\n\n")).toBe(true);
    expect(after("data: a\n")).toBe(false);
    expect(after("data: a\r\n")).toBe(false);
    expect(after("data: a\n\ndata: b")).toBe(false);
  });
});
