/** @module connectTcpStreams: a TcpSocket as two byte streams, with backpressure both ways. */

import type { Runtime, TcpConnection, TcpSocket } from "../runtime/types.ts";

/** Bytes read ahead before the socket is paused until the reader catches up. */
const READ_AHEAD_BYTES = 256 * 1024;

/** Opens a TCP connection as a readable and a writable stream (what the WebSocket relay runs on). */
export async function connectTcpStreams(connect: Runtime["connectTcp"], hostname: string, port: number): Promise<TcpConnection> {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  // Assigned once, below: the events may come before connect() returns.
  // deno-lint-ignore prefer-const
  let socket: TcpSocket | undefined;
  let closed = false;
  let drained: (() => void) | undefined;
  const wake = (): void => {
    drained?.();
    drained = undefined;
  };
  const readable = new ReadableStream<Uint8Array>({
    start: (controller) => void (input = controller),
    pull: () => socket?.resume(),
    cancel: () => socket?.destroy(),
  }, { highWaterMark: READ_AHEAD_BYTES, size: (chunk?: Uint8Array) => chunk?.byteLength ?? 0 });
  socket = await connect(hostname, port, {
    data(bytes) {
      input.enqueue(bytes);
      if ((input.desiredSize ?? 0) <= 0) socket?.pause();
    },
    drain: wake,
    // The peer's EOF: nothing more to read, but what is still to be written goes out (a
    // WebSocket child that half-closes after its Close frame waits for the reply).
    peerEnded() {
      try {
        input.close();
      } catch {
        // the reader cancelled it already
      }
    },
    close(error) {
      closed = true;
      wake();
      try {
        if (error) input.error(error);
        else input.close();
      } catch {
        // the reader cancelled it already
      }
    },
  });
  const connected = socket;
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (closed) throw new Error(`Connection to ${hostname}:${port} was closed`);
      if (!connected.write(chunk)) await new Promise<void>((resolve) => (drained = resolve));
    },
    close: () => connected.end(),
    abort: () => connected.destroy(),
  });
  return { readable, writable, close: () => connected.end() };
}
