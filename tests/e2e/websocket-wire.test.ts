/**
 * @module WebSockets through sluice with a child written at the byte level
 * (tests/fixtures/raw-ws-app.py), on the binary and under Deno: the subprotocol when the child
 * chooses none, sluice's reply to the child's Close frame, a child's protocol violation, a
 * message of many empty fragments, and many tiny messages or pings to a client that stops reading.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeClose, MessageReader } from "../../src/websockets/frames.ts";
import { ROOT, rssKiB, startSluice, TARGETS, tempDir, until } from "../harness.ts";

const RAW_WS_APP = ["python3", join(ROOT, "tests/fixtures/raw-ws-app.py")];

function records(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  } catch {
    return [];
  }
}

/** A handshake written by hand; resolves with the answer's head and a reader of the frames after it. */
async function upgrade(port: number, path: string, extraHeaders = "") {
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
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`,
  );
  const head = await Promise.race([answered, Bun.sleep(15_000).then(() => "no answer within 15 s")]);
  const messages = new MessageReader(afterHead.getReader(), new Uint8Array(0), 1 << 20);
  /** The next message or control frame from sluice, within 15 s. */
  const next = () => Promise.race([messages.next(), Bun.sleep(15_000).then(() => ({ kind: "none within 15 s" }))]);
  return { socket, head, next };
}

describe.each(TARGETS)("websockets at the byte level ($name)", (target) => {
  // Bun's server.upgrade answers with the first subprotocol the client offered when it is given
  // none: the client then speaks a protocol the app never agreed to.
  test("a client that offers subprotocols gets none when the child chooses none", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const { socket, head, next } = await upgrade(sluice.httpPort, "/echo", "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n");
    expect(head).toStartWith("HTTP/1.1 101");
    expect(head.toLowerCase()).not.toContain("sec-websocket-protocol");
    socket.write(encodeClose(1000, ""));
    expect(await next()).toMatchObject({ kind: "close", code: 1000 });
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Under Deno the reply was queued, then the connection destroyed before it was written: the
  // child saw the connection end without it (for a child's websocket library, an abnormal 1006).
  test("a Close frame from the child gets sluice's reply before the connection ends", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const closing = await upgrade(sluice.httpPort, "/close-first?code=4001");
    expect(closing.head).toStartWith("HTTP/1.1 101");
    expect(await closing.next()).toMatchObject({ kind: "close", code: 4001, reason: "bye" });
    closing.socket.write(encodeClose(4001, "bye"));
    await until(() => records(recordFile).some((r) => r.event === "reply"), 10_000, "the child's record of the reply");
    expect(records(recordFile).find((r) => r.event === "reply")).toMatchObject({ opcode: 8, code: 4001 });
    closing.socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Its record said the WebSocket had ended as it should (no outcome, no upstreamError): the
  // Close frame sluice sends the child first made it look like a close sluice began.
  test("a protocol violation by the child gets 1002 and is recorded as an error", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const masked = await upgrade(sluice.httpPort, "/masked", "X-Request-Id: masked-frame\r\n");
    expect(await masked.next()).toMatchObject({ kind: "close", code: 1011 });
    await until(() => records(recordFile).some((r) => r.event === "reply"), 10_000, "the child's record of the reply");
    expect(records(recordFile).find((r) => r.event === "reply")).toMatchObject({ opcode: 8, code: 1002 });
    masked.socket.end();
    const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "masked-frame");
    expect(access).toMatchObject({ status: 101, outcome: "error", upstreamError: "masked frame from the server" });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Each fragment was kept as an array entry of its own, and empty ones count nothing against
  // the 16 MiB message limit: a child could grow sluice's memory without bound (this message
  // took some 300 MiB).
  test("a message of a million and a half empty fragments passes with sluice's memory bounded", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const before = rssKiB(sluice.proc.pid, "VmHWM");
    const { socket, head, next } = await upgrade(sluice.httpPort, "/empty-fragments?n=1500000");
    expect(head).toStartWith("HTTP/1.1 101");
    const message = await next();
    expect(message).toMatchObject({ kind: "binary" });
    expect(new TextDecoder().decode((message as { data: Uint8Array }).data)).toBe("end");
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(64);
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // Deno's bufferedAmount counts bytes only, and each message queued for the client costs some
  // 300 bytes beyond its one: sluice read a million 1-byte messages for a client that read none
  // before it stopped reading the child, taking some 500 MiB under Deno.
  test("a child sending tiny messages to a client that stops reading: sluice stops reading the child with its memory bounded", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const before = rssKiB(sluice.proc.pid, "VmHWM");
    const count = 4_000_000;
    const client = new WebSocket(`ws://127.0.0.1:${sluice.httpPort}/tiny-messages?n=${count}`);
    const opened = Promise.withResolvers<void>();
    client.onopen = () => {
      (client as unknown as { pause(): void }).pause();
      opened.resolve();
    };
    client.onclose = () => opened.reject(new Error("closed"));
    await opened.promise;
    // Until the child's sends stall for 2 s (the sockets' buffers hold a million or two of them).
    const sent = () => (records(recordFile).filter((r) => r.event === "tiny-messages").at(-1)?.sent as number | undefined) ?? 0;
    for (let last = -1, since = Date.now(); Date.now() - since < 2000;) {
      await Bun.sleep(250);
      if (sent() !== last) [last, since] = [sent(), Date.now()];
    }
    expect(sent()).toBeLessThan(count);
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(64);
    client.close();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // A ping from the child went to the client whatever its queue held: on the binary, pings from
  // a child to a client that read none filled Bun's queue for it (64 MiB) before any were dropped.
  // Under Deno sluice answers the pings itself: a child that reads none of the pongs is closed
  // with 1008 once 16384 wait.
  test("a child flooding pings to a client that stops reading: sluice's memory stays bounded", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const before = rssKiB(sluice.proc.pid, "VmHWM");
    const count = 1_000_000;
    const client = new WebSocket(`ws://127.0.0.1:${sluice.httpPort}/pings?n=${count}`, { headers: { "x-request-id": "pings" } } as unknown as string[]);
    const opened = Promise.withResolvers<void>();
    client.onopen = () => {
      (client as unknown as { pause(): void }).pause();
      opened.resolve();
    };
    client.onclose = () => opened.reject(new Error("closed"));
    await opened.promise;
    // Until the child's sends stall for 2 s, or sluice closes the connection.
    const sent = () => (records(recordFile).filter((r) => r.event === "pings").at(-1)?.sent as number | undefined) ?? 0;
    for (let last = -1, since = Date.now(); Date.now() - since < 2000;) {
      await Bun.sleep(250);
      if (sent() !== last) [last, since] = [sent(), Date.now()];
    }
    expect(sent()).toBeLessThan(count);
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(target.name === "binary" ? 40 : 128);
    if (target.name === "deno") {
      const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "pings");
      expect(access).toMatchObject({ outcome: "error", upstreamError: "the child fell 16384 messages behind" });
    }
    client.close();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);
});
