/** @module rawUpgrade: a WebSocket handshake written by hand, for the tests that need its exact bytes. */

import { type IncomingMessage, MessageReader } from "../src/websockets/frames.ts";

/**
 * Opens a connection and sends a WebSocket handshake (`headers` replace the usual ones, `body`
 * follows the head); resolves with the answer's head (or what came of it within 20 s) and
 * readers of the frames after it, read by sluice's own MessageReader.
 */
export async function rawUpgrade(port: number, path: string, headers: Record<string, string> = {}, body = "") {
  const { promise: answered, resolve } = Promise.withResolvers<string>();
  let bytes = new Uint8Array(0);
  let headEnd = -1;
  let frames!: ReadableStreamDefaultController<Uint8Array>;
  const afterHead = new ReadableStream<Uint8Array>({ start: (controller) => void (frames = controller) });
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        if (headEnd !== -1) return frames.enqueue(chunk);
        bytes = new Uint8Array([...bytes, ...chunk]);
        headEnd = Buffer.from(bytes).indexOf("\r\n\r\n");
        if (headEnd === -1) return;
        resolve(new TextDecoder().decode(bytes.subarray(0, headEnd + 4)));
        frames.enqueue(bytes.subarray(headEnd + 4));
      },
      close() {
        resolve(new TextDecoder().decode(bytes));
        try {
          frames.close();
        } catch {
          // closed already
        }
      },
    },
  });
  const all: Record<string, string> = {
    host: `127.0.0.1:${port}`,
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    "sec-websocket-version": "13",
    ...headers,
  };
  socket.write(`GET ${path} HTTP/1.1\r\n${Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`).join("")}\r\n${body}`);
  const head = await Promise.race([answered, Bun.sleep(20_000).then(() => new TextDecoder().decode(bytes))]);
  const messages = new MessageReader(afterHead.getReader(), new Uint8Array(0), 1 << 20);
  /** The next message or control frame from sluice, within 15 s. */
  const next = (): Promise<IncomingMessage | { kind: string } | null> =>
    Promise.race([messages.next(), Bun.sleep(15_000).then(() => ({ kind: "none within 15 s" }))]);
  /** The next text message from sluice, within 15 s. */
  const nextText = async (): Promise<string> => {
    const message = await next();
    if (message?.kind !== "text") throw new Error(`expected a text message, got ${JSON.stringify(message)}`);
    return (message as { data: string }).data;
  };
  return { socket, head, next, nextText };
}
