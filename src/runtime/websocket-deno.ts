/** @module Deno's server-side WebSockets behind the runtime-neutral WebSocketPeer and WebSocketEvents. */

import type { WebSocketAccept, WebSocketEvents, WebSocketPeer } from "./types.ts";

/** Queued bytes for one client over which `send` reports backpressure. */
const SEND_QUEUE_LIMIT = 1024 * 1024;
/**
 * Messages sent since the queue was last seen empty over which `send` reports backpressure too:
 * each queued message costs memory beyond its bytes, which `bufferedAmount` does not count
 * (three million 1-byte messages to a client that read none took 930 MiB, Deno 2.9.6).
 */
const SEND_QUEUE_MESSAGES = 16 * 1024;
/** Deno has no drain event: the queue is polled this often while over the limit. */
const DRAIN_POLL_MS = 10;
/**
 * Longest a WebSocket may stay connecting after its 101 was handed over. Deno 2.9.6 leaves one
 * whose client went away just as it was upgraded connecting for good: no open, no close, no
 * error, the request's signal not aborted (a bare Deno.serve, 1,000 clients reset right after
 * sending their handshake: 254 such). sluice counted each as in flight until the drain
 * deadline of its stop. The 101 is a few hundred bytes on a fresh connection: written at once.
 */
const OPEN_DEADLINE_MS = 10_000;

function peerOf(socket: WebSocket, events: WebSocketEvents): WebSocketPeer & { stop(): void } {
  let polling: ReturnType<typeof setInterval> | undefined;
  /** Messages sent since bufferedAmount was last seen at 0: at least as many as are queued. */
  let unsettled = 0;
  const settled = (limit: number): boolean => {
    if (socket.bufferedAmount === 0) unsettled = 0;
    return socket.bufferedAmount <= limit && unsettled <= SEND_QUEUE_MESSAGES;
  };
  const stop = (): void => {
    clearInterval(polling);
    polling = undefined;
  };
  return {
    send(message) {
      socket.send(message as string | Uint8Array<ArrayBuffer>);
      unsettled++;
      if (settled(SEND_QUEUE_LIMIT)) return true;
      polling ??= setInterval(() => {
        if (!settled(SEND_QUEUE_LIMIT / 2)) return;
        stop();
        events.drained();
      }, DRAIN_POLL_MS);
      return false;
    },
    // Deno answers pings itself and exposes neither pings nor pongs.
    ping: () => "unsupported",
    pong: () => "unsupported",
    close(code, reason) {
      try {
        if (code === 1005) socket.close();
        else socket.close(code, reason);
      } catch {
        socket.close(); // a code the WebSocket API refuses
      }
    },
    pause: () => false,
    resume() {},
    stop,
  };
}

/**
 * Upgrades `request`; `stopping` tells whether the server's listener is closing. The subprotocol goes into the 101's headers directly: Deno's own
 * `protocol` option checks it against the client's list split on ", " only, and so refuses
 * a valid choice from "a,b".
 */
export function denoUpgradeWebSocket(request: Request, { protocol, headers, events }: WebSocketAccept, stopping: () => boolean): Response {
  let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
  try {
    upgraded = Deno.upgradeWebSocket(request);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return new Response(`Bad WebSocket handshake: ${reason}\n`, { status: 400, headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  const { socket, response } = upgraded;
  for (const [name, value] of headers) response.headers.append(name, value);
  if (protocol !== undefined) response.headers.set("sec-websocket-protocol", protocol);
  socket.binaryType = "arraybuffer";
  const peer = peerOf(socket, events);
  /** Set once the socket counts as closed: by its close event, or as never opened (OPEN_DEADLINE_MS). */
  let closed = false;
  const neverOpened = (): void => {
    if (closed || socket.readyState !== WebSocket.CONNECTING) return;
    closed = true;
    events.close(1006, ""); // the relay lets the child go and ends the exchange
  };
  const openDeadline = setTimeout(neverOpened, OPEN_DEADLINE_MS);
  // Gone before the upgrade completed: at once, when Deno says so (it may never: the deadline).
  request.signal.addEventListener("abort", () => setTimeout(neverOpened, 0), { once: true });
  socket.onopen = () => {
    clearTimeout(openDeadline);
    if (closed) socket.close(); // past its deadline: the relay has let the child go
    else events.open(peer);
  };
  socket.onmessage = (event) => {
    if (!closed) events.message(typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer));
  };
  socket.onclose = (event) => {
    clearTimeout(openDeadline);
    peer.stop();
    if (closed) return;
    closed = true;
    // Deno itself closes every WebSocket with 1001 when its listener closes; the close event then
    // reports 1005. Passed on as what it is: going away.
    events.close(event.code === 1005 && stopping() ? 1001 : event.code, event.reason);
  };
  socket.onerror = () => {}; // a close event follows
  return response;
}
