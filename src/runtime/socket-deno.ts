/** @module denoConnectTcp: a Deno TCP connection as the Runtime's TcpSocket. */

import type { TcpSocket, TcpSocketEvents } from "./types.ts";

/** Most bytes asked for per read (what Deno's own conn.readable asks for). */
const MAX_READ_BYTES = 64 * 1024;
/**
 * Fewest bytes asked for per read. A read waiting for bytes holds its buffer, and a chunk
 * handed on is a view of it (the whole buffer stays alive while the chunk is queued): at
 * 64 KiB per read, 2,000 open WebSockets and event streams, each with a read waiting on the
 * app, cost 560 MiB, against 300 MiB at 8 KiB. Reads start at this size, double while they
 * come back full (a body streaming) and fall back to it after one that was small.
 */
const MIN_READ_BYTES = 8 * 1024;
/** After the peer's end of stream, longest the connection stays open for what is left to write. */
const WRITE_AFTER_END_MS = 1000;
/** Bytes queued for writing before `write` asks the caller to wait for `drain`. */
const WRITE_HIGH_WATER = 64 * 1024;

/**
 * Opens a connection with Deno.connect. A read loop calls `data` (paused by not reading);
 * writes are queued on one promise chain so they go out in order.
 */
export async function denoConnectTcp(hostname: string, port: number, events: TcpSocketEvents): Promise<TcpSocket> {
  const conn = await Deno.connect({ hostname, port });
  conn.setNoDelay(true);
  let closed = false;
  /** The peer's end of stream was read (the connection stays open for `events.peerEnded`'s receiver to write on). */
  let readEnded = false;
  /** `end()` was called: our side is closed, or will be once the writes under way are done. */
  let ending = false;
  let endDeadline: ReturnType<typeof setTimeout> | undefined;
  let paused = false;
  let resumed: (() => void) | undefined;
  let queued = 0;
  let waitingForDrain = false;
  let writes = Promise.resolve();
  let readBytes = MIN_READ_BYTES;
  const finish = (error?: Error): void => {
    if (closed) return;
    closed = true;
    clearTimeout(endDeadline);
    resumed?.();
    try {
      conn.close();
    } catch {
      // already closed by Deno
    }
    events.close(error);
  };
  const fail = (error: unknown): void => finish(error instanceof Error ? error : new Error(String(error)));

  void (async () => {
    try {
      while (!closed) {
        while (paused && !closed) await new Promise<void>((resolve) => (resumed = resolve));
        if (closed) return;
        const buffer = new Uint8Array(readBytes);
        const read = await conn.read(buffer);
        if (closed) return;
        if (read === null) {
          if (!events.peerEnded || ending) return finish();
          readEnded = true;
          endDeadline = setTimeout(finish, WRITE_AFTER_END_MS); // a peer that reads no more holds nothing for long
          return events.peerEnded();
        }
        if (read === readBytes) readBytes = Math.min(readBytes * 2, MAX_READ_BYTES);
        else if (read < MIN_READ_BYTES) readBytes = MIN_READ_BYTES;
        events.data(buffer.subarray(0, read));
      }
    } catch (error) {
      if (!closed) fail(error); // after destroy(), the pending read fails: nothing to report
    }
  })();

  return {
    write(bytes) {
      if (closed) return false;
      queued += bytes.byteLength;
      writes = writes.then(async () => {
        for (let offset = 0; offset < bytes.byteLength && !closed;) offset += await conn.write(bytes.subarray(offset));
        queued -= bytes.byteLength;
        if (queued === 0 && waitingForDrain && !closed) {
          waitingForDrain = false;
          events.drain();
        }
      }).catch(fail);
      if (queued <= WRITE_HIGH_WATER) return true;
      waitingForDrain = true;
      return false;
    },
    pause: () => void (paused = true),
    resume() {
      paused = false;
      resumed?.();
      resumed = undefined;
    },
    end() {
      ending = true;
      writes = writes.then(() => {
        if (closed) return;
        if (readEnded) return finish(); // both sides are done
        return conn.closeWrite();
      }).catch(fail);
    },
    destroy: () => finish(),
  };
}
