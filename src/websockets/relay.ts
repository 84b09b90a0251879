/**
 * @module WebSocketRelay: one proxied WebSocket, from the client's runtime-side socket to the
 * child's connection and back: messages, pings, close codes, backpressure both ways, and the
 * stop (1001 to both sides at the drain deadline).
 */

import type { Exchange, Outcome } from "../exchange.ts";
import type { TcpConnection, WebSocketEvents, WebSocketMessage, WebSocketPeer } from "../runtime/types.ts";
import { encodeClose, encodeFrame, MessageReader, Opcode, validCloseCode, WebSocketProtocolError } from "./frames.ts";

/**
 * The largest message taken from either side: bigger ones close with 1009. The same as Bun's
 * limit for clients, which Bun applies itself; Deno lets up to 64 MiB through.
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Bytes written to the child and not yet taken by the socket over which the client is paused. */
const UPSTREAM_HIGH_WATER = 1024 * 1024;
/** Where the runtime cannot pause a client (Deno), a child this far behind closes the connection (1008). */
const UPSTREAM_HARD_LIMIT = 64 * 1024 * 1024;
/**
 * The same limits in frames: a frame waiting to be written costs memory well beyond its bytes
 * (about 1 KiB under Deno, measured), so a client sending tiny messages to a child that reads
 * none was bounded only at millions of them (2.7 GiB for three million 1-byte messages under Deno).
 */
const UPSTREAM_HIGH_WATER_FRAMES = 1024;
const UPSTREAM_HARD_LIMIT_FRAMES = 16 * 1024;
/** Longest the child's messages are passed on without letting the event loop take a turn. */
const PUMP_SLICE_MS = 10;
/** A wait this long for the child's next message was a wait for its bytes: the event loop ran meanwhile. */
const WAITED_MS = 1;
/** How long a Close frame sent to the child waits for the child's own before the connection is cut. */
const CLOSE_WAIT_MS = 1000;

const encoder = new TextEncoder();

export interface UpstreamSocket {
  tcp: TcpConnection;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  leftover: Uint8Array;
}

export class WebSocketRelay implements WebSocketEvents {
  readonly #exchange: Exchange;
  readonly #tcp: TcpConnection;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #messages: MessageReader;
  #peer: WebSocketPeer | undefined;
  /** Bytes handed to the child's socket and not yet written. */
  #unwritten = 0;
  /** Frames handed to the child's socket and not yet written. */
  #unwrittenFrames = 0;
  #clientPaused = false;
  /** Client pings passed to the child whose pongs are dropped: the runtime already answered them. */
  #pingsAnswered = 0;
  #waitingForDrain: (() => void) | undefined;
  #closeSentUpstream = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #clientClosed = false;
  #outcome: Outcome = "complete";

  constructor(exchange: Exchange, { tcp, reader, leftover }: UpstreamSocket) {
    this.#exchange = exchange;
    this.#tcp = tcp;
    this.#writer = tcp.writable.getWriter();
    this.#messages = new MessageReader(reader, leftover, MAX_MESSAGE_BYTES);
  }

  open(peer: WebSocketPeer): void {
    this.#peer = peer;
    void this.#pumpFromChild(peer);
  }

  message(message: WebSocketMessage): void {
    if (this.#closeSentUpstream) return; // the child is being closed: nothing more goes to it
    const text = typeof message === "string";
    const payload = text ? encoder.encode(message) : message;
    if (payload.byteLength > MAX_MESSAGE_BYTES) {
      const reason = `message over ${MAX_MESSAGE_BYTES} bytes`;
      this.#peer?.close(1009, reason);
      return this.close(1009, reason); // the child hears why; nothing more goes to either side
    }
    this.#exchange.bytesIn += payload.byteLength;
    this.#toChild(encodeFrame(text ? Opcode.text : Opcode.binary, payload));
  }

  ping(payload: Uint8Array): void {
    this.#pingsAnswered++;
    this.#toChild(encodeFrame(Opcode.ping, payload));
  }

  pong(payload: Uint8Array): void {
    this.#toChild(encodeFrame(Opcode.pong, payload));
  }

  drained(): void {
    this.#waitingForDrain?.();
    this.#waitingForDrain = undefined;
  }

  /**
   * The client's side closed: the child hears the same code; 1005 as none, and a connection
   * lost without a Close frame (1006 on Bun, 0 on Deno) as going away: a Close frame may carry neither.
   */
  close(code: number, reason: string): void {
    this.#clientClosed = true;
    this.drained(); // a pump waiting on the client must not wait forever
    if (this.#peer === undefined) return this.#cut(true); // the runtime refused the handshake: never opened
    if (code === 1005 || validCloseCode(code)) this.#closeChild(code, reason);
    else this.#closeChild(1001, "");
  }

  /** At the drain deadline: both sides hear 1001 (going away); the exchange ends once the child answers. */
  goAway(): void {
    if (this.#exchange.ended) return;
    this.#outcome = "aborted";
    if (!this.#clientClosed) this.#peer?.close(1001, "server stopping");
    if (this.#peer === undefined) return this.#cut(true);
    this.#closeChild(1001, "server stopping");
  }

  /** Reads the child's messages and passes them on, waiting whenever the client's queue is full. */
  async #pumpFromChild(peer: WebSocketPeer): Promise<void> {
    try {
      // Messages already buffered come one after another without a turn of the event loop in
      // between: a child sending tiny ones fast would keep everything else waiting. So the pump
      // takes a turn once it has passed messages on for PUMP_SLICE_MS without one. A wait for
      // the child's next bytes is one: the slice starts again after it. (Measured from the
      // previous turn the pump took instead, every message after a pause of 10 ms waited for a
      // timer turn first: 1.5 to 3 ms more per message of an interactive WebSocket.)
      let sliceStart = performance.now();
      for (;;) {
        const asked = performance.now();
        const message = await this.#messages.next();
        if (message === null) break;
        const now = performance.now();
        if (now - asked >= WAITED_MS) sliceStart = now;
        else if (now - sliceStart > PUMP_SLICE_MS) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          sliceStart = performance.now();
        }
        switch (message.kind) {
          case "text":
          case "binary":
            this.#exchange.bytesOut += message.kind === "text" ? message.byteLength : message.data.byteLength;
            if (!this.#clientClosed && !peer.send(message.data)) await this.#clientDrained();
            break;
          case "ping":
            // End to end where the runtime can; else answered here (the client's runtime answers its own).
            switch (this.#clientClosed ? "unsupported" : peer.ping(message.data)) {
              case "unsupported":
                this.#toChild(encodeFrame(Opcode.pong, message.data));
                break;
              case "full": // a client that stops reading stalls the child's pings as its messages
                await this.#clientDrained();
            }
            break;
          case "pong":
            if (this.#pingsAnswered > 0) this.#pingsAnswered--;
            else if (!this.#clientClosed && peer.pong(message.data) === "full") await this.#clientDrained();
            break;
          case "close":
            if (!this.#clientClosed) peer.close(message.code, message.reason);
            this.#closeChild(message.code, message.reason); // the reply that completes the child's handshake
            return this.#cut();
        }
      }
      this.#childLost(peer, "the child closed the connection without a Close frame");
    } catch (error) {
      if (this.#closeSentUpstream) return this.#cut(); // cut after our Close frame: expected
      const why = error instanceof Error ? error.message : String(error);
      const code = error instanceof WebSocketProtocolError ? error.code : 1006;
      if (code !== 1006) this.#closeChild(code, why); // a protocol violation: the child hears which
      // A message over the limit is no lost connection: the client hears 1009 as well, as for its own.
      this.#childLost(peer, why, true, code === 1009 ? [1009, why] : undefined);
    }
  }

  /** Resolves once the client's send queue is back under its limit, or the client closed. */
  #clientDrained(): Promise<void> {
    return new Promise<void>((resolve) => (this.#waitingForDrain = resolve));
  }

  /** `failed`: the child broke the connection or the protocol (not merely cut after our Close frame). */
  #childLost(
    peer: WebSocketPeer,
    why: string,
    failed = !this.#closeSentUpstream,
    [code, reason]: [number, string] = [1011, "upstream connection lost"],
  ): void {
    if (failed) {
      this.#exchange.upstreamError = why;
      if (this.#outcome === "complete") this.#outcome = "error";
    }
    if (!this.#clientClosed) peer.close(code, reason);
    this.#cut();
  }

  #toChild(frame: Uint8Array): void {
    if (this.#closeSentUpstream) return;
    this.#write(frame);
    if ((this.#unwritten <= UPSTREAM_HIGH_WATER && this.#unwrittenFrames <= UPSTREAM_HIGH_WATER_FRAMES) || this.#clientPaused) return;
    this.#clientPaused = this.#peer?.pause() ?? false;
    if (!this.#clientPaused && (this.#unwritten > UPSTREAM_HARD_LIMIT || this.#unwrittenFrames > UPSTREAM_HARD_LIMIT_FRAMES)) {
      this.#outcome = "error";
      this.#exchange.upstreamError = this.#unwritten > UPSTREAM_HARD_LIMIT
        ? `the child fell ${UPSTREAM_HARD_LIMIT} bytes behind`
        : `the child fell ${UPSTREAM_HARD_LIMIT_FRAMES} messages behind`;
      this.#peer?.close(1008, "upstream too slow");
      this.#closeChild(1008, "");
    }
  }

  #write(frame: Uint8Array): void {
    this.#unwritten += frame.byteLength;
    this.#unwrittenFrames++;
    this.#writer.write(frame).then(() => {
      this.#unwritten -= frame.byteLength;
      this.#unwrittenFrames--;
      if (this.#clientPaused && this.#unwritten < UPSTREAM_HIGH_WATER / 2 && this.#unwrittenFrames < UPSTREAM_HIGH_WATER_FRAMES / 2) {
        this.#clientPaused = false;
        this.#peer?.resume();
      }
    }, () => this.#cut(true));
  }

  /**
   * Sends the child a Close frame once; the connection is cut when its reply comes, or after
   * CLOSE_WAIT_MS. Written past the backpressure checks: the frame that closes a connection
   * for being too far behind is itself behind.
   */
  #closeChild(code: number, reason: string): void {
    if (this.#closeSentUpstream) return;
    this.#closeSentUpstream = true;
    this.#write(encodeClose(code, reason));
    this.#closeTimer = setTimeout(() => this.#cut(true), CLOSE_WAIT_MS);
  }

  /**
   * Ends the exchange (once) and lets the child's connection go: what was written to it goes
   * out first (a Close frame above all: cancelling the reader destroys the connection, and
   * under Deno the writes still queued with it), then the connection is half-closed. Reading
   * stops when the child closes its end, as it does on our Close frame, or after
   * CLOSE_WAIT_MS; at once with `now` (a child that did not answer our Close frame in time, or
   * a connection that failed or never opened).
   */
  #cut(now = false): void {
    if (this.#exchange.ended) return;
    clearTimeout(this.#closeTimer);
    if (now) this.#messages.cancel();
    else setTimeout(() => this.#messages.cancel(), CLOSE_WAIT_MS);
    this.#writer.close().catch(() => {}).finally(() => {
      try {
        this.#tcp.close();
      } catch {
        // closed with its writable side already (Deno)
      }
    });
    this.#exchange.end(this.#outcome);
  }
}
