/** @module Byte helpers for hand-written HTTP/1.1 on raw connections (the upstream client, the WebSocket handshake). */

/** Where `needle` starts in `haystack` at or after `from`, or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: ArrayLike<number>, from: number): number {
  for (let i = haystack.indexOf(needle[0]!, from); i !== -1; i = haystack.indexOf(needle[0]!, i + 1)) {
    if (i + needle.length > haystack.length) return -1;
    let k = 1;
    while (k < needle.length && haystack[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
  }
  return -1;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

const NOT_ASCII = /[\u0080-\uffff]/;
const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

/**
 * Header bytes are Latin-1 on the wire and in Headers (ByteString); TextDecoder's "latin1" is
 * windows-1252. Plain ASCII, nearly every head, takes the runtime's UTF-8 decoder (identical
 * for ASCII, and about ten times faster than building the string in JS).
 */
export function latin1Decode(bytes: Uint8Array): string {
  const ascii = utf8Decoder.decode(bytes);
  if (!NOT_ASCII.test(ascii)) return ascii;
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  return text;
}

export function latin1Encode(text: string): Uint8Array {
  return NOT_ASCII.test(text) ? Uint8Array.from(text, (char) => char.charCodeAt(0)) : utf8Encoder.encode(text);
}
