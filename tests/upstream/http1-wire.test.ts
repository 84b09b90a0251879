/** @module The upstream client's wire format: response heads, and body decoders fed in every possible split. */

import { describe, expect, test } from "bun:test";
import { ChunkedDecoder, encodeRequestHead, LengthDecoder, parseResponseHead, ResponseError } from "../../src/upstream/http1-wire.ts";

const bytes = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const text = (parts: Uint8Array[]) => parts.map((p) => String.fromCharCode(...p)).join("");

/** Feeds `wire` to a fresh decoder in pieces cut at `cuts`; returns the payload and the bytes left after the body. */
function decodeIn(make: () => ChunkedDecoder | LengthDecoder, wire: string, cuts: number[]) {
  const decoder = make();
  const payload: Uint8Array[] = [];
  let rest = "";
  let at = 0;
  for (const cut of [...cuts, wire.length]) {
    const piece = bytes(wire.slice(at, cut));
    at = cut;
    if (decoder.done) {
      rest += String.fromCharCode(...piece);
      continue;
    }
    const used = decoder.decode(piece, (p) => payload.push(p.slice()));
    rest += String.fromCharCode(...piece.subarray(used));
  }
  return { payload: text(payload), done: decoder.done, rest };
}

describe("ChunkedDecoder", () => {
  const wire = "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\nNEXT";

  test("decodes the same whatever the reads' boundaries (every two-way split)", () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      expect(decodeIn(() => new ChunkedDecoder("k", 1024), wire, [cut])).toEqual({ payload: "hello world", done: true, rest: "NEXT" });
    }
  });

  test("decodes byte by byte", () => {
    const cuts = Array.from({ length: wire.length }, (_, i) => i);
    expect(decodeIn(() => new ChunkedDecoder("k", 1024), wire, cuts)).toEqual({ payload: "hello world", done: true, rest: "NEXT" });
  });

  test.each([
    ["zz\r\n", 'invalid chunk size "zz"'],
    ["3\r\nabcdef\r\n", "chunk data longer than its size"],
    ["3\nabc", "not ended by CRLF"],
    [`${"1".repeat(40)}\r\n`, "longer than 16 bytes"],
  ])("refuses %j", (bad, message) => {
    const decoder = new ChunkedDecoder("up:1", 16);
    const error = (() => {
      try {
        decoder.decode(bytes(bad), () => {});
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ResponseError);
    expect((error as Error).message).toContain(message);
  });
});

describe("LengthDecoder", () => {
  test("takes exactly its length and leaves the rest, whatever the split", () => {
    for (let cut = 0; cut <= 9; cut++) {
      expect(decodeIn(() => new LengthDecoder(5), "helloNEXT", [cut])).toEqual({ payload: "hello", done: true, rest: "NEXT" });
    }
  });
});

describe("parseResponseHead", () => {
  test("keeps names as sent, values without surrounding blanks, obs-text as Latin-1", () => {
    const head = parseResponseHead(bytes("HTTP/1.1 200 Fine\r\nX-Name:  padded \t\r\nX-Latin: caf\xe9\r\nContent-Length: 3"), "k");
    expect(head).toMatchObject({ minor: "1", status: 200, statusText: "Fine", contentLength: "3" });
    expect(head.headers).toEqual([["X-Name", "padded"], ["X-Latin", "caf\u00e9"], ["Content-Length", "3"]]);
  });

  test("picks out the framing: transfer-encoding is dropped from the fields, repeated lengths joined, close noticed", () => {
    const head = parseResponseHead(bytes("HTTP/1.0 200 OK\r\ncontent-length: 5\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, Close"), "k");
    expect(head.contentLength).toBe("5, 5");
    expect(head.transferEncoding).toBe("chunked");
    expect(head.close).toBe(true);
    expect(head.headers.map(([name]) => name)).toEqual(["content-length", "Content-Length", "Connection"]);
    expect(head.typed).toBe(false);
    expect(parseResponseHead(bytes("HTTP/1.1 200 OK\r\nX-Request-Id: 1\r\nContent-TYPE: text/plain"), "k").typed).toBe(true);
  });

  test.each([
    ["HTTP/1.1 200 OK\r\nbare\nlf: 1", "invalid header line"],
    ["HTTP/1.1 200 OK\r\nx-nul: a\0b", "invalid header line"],
    ["HTTP/1.1 200 OK\r\n: no name", "invalid header line"],
    ["HTTP/2 200 OK", "invalid status line"],
  ])("refuses %j", (head, message) => {
    expect(() => parseResponseHead(bytes(head), "k")).toThrow(message);
  });
});

describe("encodeRequestHead", () => {
  test("writes the fields as given, host first when added, and the client's own framing", () => {
    const head = encodeRequestHead("POST", "/p?q=1", "up:3000", [["x-a", "caf\u00e9"], ["content-length", "5"], ["transfer-encoding", "gzip"]], "chunked");
    expect(String.fromCharCode(...head)).toBe("POST /p?q=1 HTTP/1.1\r\nhost: up:3000\r\nx-a: caf\u00e9\r\ntransfer-encoding: chunked\r\n\r\n");
    expect(head[head.indexOf(0x63, 40) + 3]).toBe(0xe9); // Latin-1, one byte
  });

  test("a body of known length goes with one content-length, even when the client repeated it", () => {
    const head = encodeRequestHead("POST", "/", undefined, [["Content-Length", "5"], ["x-a", "1"], ["Content-Length", "5"]], 5);
    expect(String.fromCharCode(...head)).toBe("POST / HTTP/1.1\r\nx-a: 1\r\ncontent-length: 5\r\n\r\n");
  });

  test("without a body, the fields' own content-length goes as given", () => {
    const head = encodeRequestHead("GET", "/", undefined, [["content-length", "0"]], undefined);
    expect(String.fromCharCode(...head)).toBe("GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
  });

  test("a target's characters outside ASCII go percent-encoded as UTF-8, never as one byte each", () => {
    const head = encodeRequestHead("GET", "/caf\u00e9?\u010d\u010ax:1&\u{1F600}", undefined, [], undefined);
    expect(String.fromCharCode(...head)).toBe("GET /caf%C3%A9?%C4%8D%C4%8Ax:1&%F0%9F%98%80 HTTP/1.1\r\n\r\n");
  });

  test.each(["/a b", "/a\r\nx-injected: 1", "/a\u0000", "/a\u007f", "/caf\u00e9 x"])("refuses the target %j", (target) => {
    expect(() => encodeRequestHead("GET", target, "up", [], undefined)).toThrow("invalid request target");
  });
});
