/** @module bunConnectTcp: a Bun TCP client socket as the Runtime's TcpSocket. */

import type { Socket } from "bun";
import type { TcpSocket, TcpSocketEvents } from "./types.ts";

/**
 * Opens a connection with Bun.connect. Bun's `write` sends what the kernel takes and returns
 * the count; the rest is queued here and sent on `drain`. The buffer Bun hands to `data` is
 * a new one each time (checked on 1.4.5), so it is passed on without a copy.
 */
export async function bunConnectTcp(hostname: string, port: number, events: TcpSocketEvents): Promise<TcpSocket> {
  const queue: Uint8Array[] = [];
  let ending = false;
  let closed = false;
  const finish = (error?: Error): void => {
    if (closed) return;
    closed = true;
    queue.length = 0;
    events.close(error);
  };
  /** Writes what is queued; true once all of it is out. */
  const flush = (socket: Socket<undefined>): boolean => {
    while (queue.length > 0) {
      const chunk = queue[0]!;
      const written = socket.write(chunk);
      if (written < chunk.byteLength) {
        if (written > 0) queue[0] = chunk.subarray(written);
        return false;
      }
      queue.shift();
    }
    if (ending) socket.end();
    return true;
  };
  const socket = await Bun.connect({
    hostname,
    port,
    socket: {
      data: (_socket, bytes) => events.data(bytes),
      drain(socket) {
        if (!closed && queue.length > 0 && flush(socket)) events.drain();
      },
      end(socket) {
        // The peer's FIN: an HTTP/1.1 upstream sends nothing after it.
        socket.end();
        finish();
      },
      close: (_socket, error) => finish(error),
      error: (_socket, error) => finish(error),
    },
  });
  socket.setNoDelay(true);
  return {
    write(bytes) {
      if (closed) return false;
      if (queue.length > 0) {
        queue.push(bytes);
        return false;
      }
      const written = socket.write(bytes);
      if (written === bytes.byteLength) return true;
      queue.push(written > 0 ? bytes.subarray(written) : bytes);
      return false;
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    end() {
      if (closed || ending) return;
      ending = true;
      if (queue.length === 0) socket.end();
    },
    destroy() {
      if (closed) return;
      socket.terminate();
      finish();
    },
  };
}
