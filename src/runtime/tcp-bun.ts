/** @module A Bun TCP connection as the TcpConnection streams, with backpressure both ways. */

import type { TcpConnection } from "./types.ts";

/** Bytes read ahead before the socket is paused until the reader catches up. */
const READ_AHEAD_BYTES = 256 * 1024;

export async function bunConnectTcp(hostname: string, port: number): Promise<TcpConnection> {
  let input!: ReadableStreamDefaultController<Uint8Array>;
  // Assigned once, below: the streams' callbacks may run before the connection exists.
  // deno-lint-ignore prefer-const
  let socket: Awaited<ReturnType<typeof Bun.connect>> | undefined;
  let closed = false;
  let drained: (() => void) | undefined;
  const wake = (): void => {
    drained?.();
    drained = undefined;
  };
  const readable = new ReadableStream<Uint8Array>({
    start: (controller) => void (input = controller),
    pull: () => socket?.resume(),
    cancel: () => void socket?.end(),
  }, { highWaterMark: READ_AHEAD_BYTES, size: (chunk?: Uint8Array) => chunk?.byteLength ?? 0 });
  const end = (error?: Error): void => {
    closed = true;
    wake();
    try {
      if (error) input.error(error);
      else input.close();
    } catch {
      // already ended
    }
  };
  socket = await Bun.connect({
    hostname,
    port,
    socket: {
      data(s, bytes) {
        input.enqueue(new Uint8Array(bytes)); // a copy: Bun may reuse its buffer
        if ((input.desiredSize ?? 0) <= 0) s.pause();
      },
      drain: wake,
      end: () => end(),
      close: (_s, error) => end(error),
      error: (_s, error) => end(error),
    },
  });
  socket.setNoDelay(true);
  const connected = socket;
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let rest = chunk; rest.byteLength > 0;) {
        if (closed) throw new Error(`Connection to ${hostname}:${port} was closed`);
        const written = connected.write(rest);
        rest = rest.subarray(Math.max(0, written));
        if (rest.byteLength > 0) await new Promise<void>((resolve) => (drained = resolve));
      }
    },
    close: () => void connected.end(),
    abort: () => void connected.terminate(),
  });
  return { readable, writable, close: () => void connected.end() };
}
