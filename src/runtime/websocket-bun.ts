/** @module Bun's server-side WebSockets behind the runtime-neutral WebSocketPeer and WebSocketEvents. */

import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import type { WebSocketAccept, WebSocketEvents, WebSocketPeer } from "./types.ts";

/**
 * Bytes Bun may queue for one client. Over it, `send` drops the message (uWebSockets): sluice
 * stops sending at the first `send` that reports backpressure (-1), long before, and waits for
 * `drain`. Room for a largest message on top of what is queued.
 */
const BACKPRESSURE_LIMIT = 64 * 1024 * 1024;
/** The largest message accepted from a client (Bun's default): bigger ones close with 1009. */
export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The reason of Bun's own close for a message over `maxPayloadLength`. */
const TOO_BIG_REASON = "Received too big message";

type Socket = ServerWebSocket<WebSocketEvents>;

function peerOf(ws: Socket): WebSocketPeer {
  return {
    send: (message) => ws.send(message) !== -1,
    ping: (payload) => (ws.ping(payload) === -1 ? "full" : "sent"),
    pong: (payload) => (ws.pong(payload) === -1 ? "full" : "sent"),
    // Bun sends a Close frame without a code for 1005.
    close: (code, reason) => ws.close(code, reason),
    pause: () => (ws.pause(), true),
    resume: () => ws.resume(),
  };
}

/** The `websocket` option of Bun.serve: every event goes to the connection's own WebSocketEvents. */
export const bunWebSocketHandler: WebSocketHandler<WebSocketEvents> = {
  open(ws) {
    ws.binaryType = "uint8array"; // binary messages, pings and pongs as plain bytes
    ws.data.open(peerOf(ws));
  },
  message: (ws, message) => ws.data.message(message as string | Uint8Array),
  ping: (ws, payload) => ws.data.ping(payload),
  pong: (ws, payload) => ws.data.pong(payload),
  drain: (ws) => ws.data.drained(),
  // Bun sends a client whose message is too big 1009, but reports that close as 1006.
  close: (ws, code, reason) => ws.data.close(code === 1006 && reason === TOO_BIG_REASON ? 1009 : code, reason),
  maxPayloadLength: MAX_CLIENT_MESSAGE_BYTES,
  backpressureLimit: BACKPRESSURE_LIMIT,
  perMessageDeflate: false,
};

/** Upgrades `request` on `server`; `open` runs before this returns. */
export function bunUpgradeWebSocket(server: Server<WebSocketEvents>, request: Request, { protocol, headers, events }: WebSocketAccept): Response | undefined {
  const answer = new Headers(headers);
  // Given no Sec-WebSocket-Protocol, Bun answers with the first one the client offered, which
  // the app never agreed to; an empty one makes it send none (docs/runtime-notes.md).
  answer.set("sec-websocket-protocol", protocol ?? "");
  if (server.upgrade(request, { data: events, headers: answer })) return undefined;
  return new Response("Bad WebSocket handshake\n", { status: 400, headers: { "content-type": "text/plain; charset=utf-8" } });
}
