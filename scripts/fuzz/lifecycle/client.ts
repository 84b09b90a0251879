/**
 * @module The lifecycle fuzzer's HTTP/1.1 client, over raw TCP so that it knows what fetch
 * hides: whether the connection was accepted at all (a refusal is fine at a stop, a reset
 * after acceptance is not), and whether an answer came whole, cut or not at all.
 */

import { connect, type Socket } from "node:net";

export type Answer =
  | { kind: "refused" } // the connection was never accepted
  | { kind: "status"; status: number; body: string; close: boolean }
  | { kind: "reset"; bytes: number; error: string } // accepted, then an error before a whole answer
  | { kind: "empty" } // accepted, then closed with no byte of an answer
  | { kind: "cut"; bytes: number } // accepted, part of an answer, then closed
  | { kind: "timeout"; bytes: number };

export interface Exchange {
  method: "GET" | "POST";
  path: string;
  body?: Uint8Array;
}

/** What one connection carried: an answer for each request sent on it, in order. */
export interface ConnectionResult {
  answers: Answer[];
  /** When each answer came, ms since the start (performance.now()). */
  at: number[];
  /** When each request was written (performance.now()). */
  sentAt: number[];
}

/**
 * Opens one connection to 127.0.0.1:`port` and sends `exchanges` on it one after another
 * (keep-alive), `gapMs` apart; stops at the first answer that is not a whole one, or that
 * asks to close. Every wait is bounded by `timeoutMs` in all.
 */
export function exchangeOn(port: number, exchanges: Exchange[], gapMs: number, timeoutMs: number): Promise<ConnectionResult> {
  return new Promise((resolve) => {
    const result: ConnectionResult = { answers: [], at: [], sentAt: [] };
    const socket: Socket = connect({ host: "127.0.0.1", port });
    let accepted = false;
    let received = Buffer.alloc(0);
    let done = false;
    let next = 0;
    const finish = (answer?: Answer): void => {
      if (done) return;
      if (answer) {
        result.answers.push(answer);
        result.at.push(performance.now());
      }
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ kind: "timeout", bytes: received.length }), timeoutMs);
    const send = (): void => {
      const exchange = exchanges[next++]!;
      result.sentAt.push(performance.now());
      const body = exchange.body ?? new Uint8Array(0);
      const head = `${exchange.method} ${exchange.path} HTTP/1.1\r\nHost: fuzz\r\nAccept-Encoding: identity\r\n` +
        (exchange.method === "POST" ? `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n` : "") + "\r\n";
      socket.write(head);
      if (body.length > 0) socket.write(body);
    };
    socket.once("connect", () => {
      accepted = true;
      send();
    });
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (;;) {
        const parsed = parseResponse(received);
        if (!parsed) return;
        received = received.subarray(parsed.length);
        result.answers.push({ kind: "status", status: parsed.status, body: parsed.body, close: parsed.close });
        result.at.push(performance.now());
        if (parsed.close || next >= exchanges.length) return finish();
        setTimeout(() => !done && send(), gapMs);
      }
    });
    socket.once("error", (error: NodeJS.ErrnoException) => {
      if (!accepted) return finish({ kind: "refused" });
      finish({ kind: "reset", bytes: received.length, error: error.code ?? error.message });
    });
    socket.once("close", () => {
      if (!accepted) return finish({ kind: "refused" });
      finish(received.length === 0 ? { kind: "empty" } : { kind: "cut", bytes: received.length });
    });
  });
}

/** A whole response at the start of `bytes`, or undefined while it is incomplete. */
function parseResponse(bytes: Buffer): { status: number; body: string; close: boolean; length: number } | undefined {
  const end = bytes.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const lines = bytes.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const close = /close/i.test(headers.get("connection") ?? "");
  const start = end + 4;
  const length = headers.get("content-length");
  if (length !== undefined) {
    const total = start + Number(length);
    if (bytes.length < total) return undefined;
    return { status, body: bytes.subarray(start, total).toString(), close, length: total };
  }
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    let at = start;
    let body = "";
    for (;;) {
      const lineEnd = bytes.indexOf("\r\n", at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(bytes.subarray(at, lineEnd).toString(), 16);
      if (size === 0) {
        const trailerEnd = bytes.indexOf("\r\n", lineEnd + 2);
        if (trailerEnd < 0) return undefined;
        return { status, body, close, length: trailerEnd + 2 };
      }
      if (bytes.length < lineEnd + 2 + size + 2) return undefined;
      body += bytes.subarray(lineEnd + 2, lineEnd + 2 + size).toString();
      at = lineEnd + 2 + size + 2;
    }
  }
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, body: "", close, length: start };
  return undefined; // a body up to the close: not what sluice sends
}
