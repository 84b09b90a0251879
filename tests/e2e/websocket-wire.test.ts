/**
 * @module WebSockets through sluice with a child written at the byte level
 * (tests/fixtures/raw-ws-app.py), on the binary and under Deno: the subprotocol when the child
 * chooses none, sluice's reply to the child's Close frame, a child's protocol violation, a
 * message of many empty fragments, and many tiny messages or pings to a client that stops reading.
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeClose, encodeFrame } from "../../src/websockets/frames.ts";
import { ROOT, rssKiB, startSluice, TARGETS, tempDir, until } from "../harness.ts";
import { rawUpgrade } from "../raw-websocket.ts";

const RAW_WS_APP = ["python3", join(ROOT, "tests/fixtures/raw-ws-app.py")];

function records(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  } catch {
    return [];
  }
}

/**
 * Opens a WebSocket whose client reads nothing (paused once open), and waits until the child's
 * sends, as it records them under `event`, have not moved for 2 s: what it sent by then.
 */
async function pausedUntilStalled(url: string, recordFile: string, event: string, headers: Record<string, string> = {}) {
  const client = new WebSocket(url, { headers } as unknown as string[]);
  const opened = Promise.withResolvers<void>();
  client.onopen = () => {
    (client as unknown as { pause(): void }).pause();
    opened.resolve();
  };
  client.onclose = () => opened.reject(new Error("closed"));
  await opened.promise;
  const sent = () => (records(recordFile).filter((r) => r.event === event).at(-1)?.sent as number | undefined) ?? 0;
  for (let last = -1, since = Date.now(); Date.now() - since < 2000;) {
    await Bun.sleep(250);
    if (sent() !== last) [last, since] = [sent(), Date.now()];
  }
  return { client, sent: sent() };
}

describe.each(TARGETS)("websockets at the byte level ($name)", (target) => {
  // Bun's server.upgrade answers with the first subprotocol the client offered when it is given
  // none: the client then speaks a protocol the app never agreed to.
  test("a client that offers subprotocols gets none when the child chooses none", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const { socket, head, next } = await rawUpgrade(sluice.httpPort, "/echo", { "sec-websocket-protocol": "chat.v1, chat.v2" });
    expect(head).toStartWith("HTTP/1.1 101");
    expect(head.toLowerCase()).not.toContain("sec-websocket-protocol");
    socket.write(encodeClose(1000, ""));
    expect(await next()).toMatchObject({ kind: "close", code: 1000 });
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Deno hands a target's UTF-8 over decoded, and each character went to the child as its
  // code's low byte: U+0100 + c as c, so a client could end the request line with "\u010d\u010a"
  // and write headers of its own ahead of sluice's X-Forwarded-For.
  test("a target with characters outside ASCII reaches the child percent-encoded as UTF-8, never as bytes that end its request line", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const hidden = [..." HTTP/1.1\r\nx-forwarded-for: 10.0.0.1\r\nx-rest:"].map((c) => String.fromCharCode(0x100 + c.charCodeAt(0))).join("");
    const { socket, head, nextText } = await rawUpgrade(sluice.httpPort, `/record-head?q=caf\u00e9&h=${hidden}`);
    expect(head).toStartWith("HTTP/1.1 101");
    socket.write(encodeFrame(1, new TextEncoder().encode("hello")));
    expect(await nextText()).toBe("hello");
    socket.end();
    const percent = (text: string) => [...Buffer.from(text, "utf8")].map((b) => `%${b.toString(16).toUpperCase()}`).join("");
    const recorded = records(recordFile).find((r) => r.event === "head")!;
    expect(recorded.target).toBe(`/record-head?q=caf%C3%A9&h=${percent(hidden)}`);
    expect((recorded.names as string[]).filter((name) => name === "x-forwarded-for")).toHaveLength(1);
    expect(recorded.names).not.toContain("x-rest");
  }, 60_000);

  // Under Deno the reply was queued, then the connection destroyed before it was written: the
  // child saw the connection end without it (for a child's websocket library, an abnormal 1006).
  test("a Close frame from the child gets sluice's reply before the connection ends", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const closing = await rawUpgrade(sluice.httpPort, "/close-first?code=4001");
    expect(closing.head).toStartWith("HTTP/1.1 101");
    expect(await closing.next()).toMatchObject({ kind: "close", code: 4001, reason: "bye" });
    closing.socket.write(encodeClose(4001, "bye"));
    await until(() => records(recordFile).some((r) => r.event === "reply"), 10_000, "the child's record of the reply");
    expect(records(recordFile).find((r) => r.event === "reply")).toMatchObject({ opcode: 8, code: 4001 });
    closing.socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Under Deno the connection was closed as soon as the child's FIN was read, right after its
  // Close frame, with sluice's reply still being written: the child never got it (8 of 10).
  test("a child that half-closes after its Close frame still gets sluice's reply", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    for (let i = 1; i <= 5; i++) {
      const closing = await rawUpgrade(sluice.httpPort, `/close-first?code=${4000 + i}&fin=1`);
      expect(closing.head).toStartWith("HTTP/1.1 101");
      expect(await closing.next()).toMatchObject({ kind: "close", code: 4000 + i, reason: "bye" });
      closing.socket.write(encodeClose(4000 + i, "bye"));
      await until(() => records(recordFile).filter((r) => r.event === "reply").length === i, 10_000, "the child's record of the reply");
      expect(records(recordFile).filter((r) => r.event === "reply").at(-1)).toMatchObject({ opcode: 8, code: 4000 + i });
      closing.socket.end();
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // sluice decodes the child's text messages to check them (invalid UTF-8 is a 1007) and to pass
  // them on as text: its decoder took a leading U+FEFF for a byte order mark and dropped it,
  // so the client got "bom" for "\uFEFFbom" and an empty message for a lone U+FEFF.
  test("a text message from the child that begins with U+FEFF reaches the client whole", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const { socket, head, next } = await rawUpgrade(sluice.httpPort, "/echo"); // the client's text reaches the child as sent
    expect(head).toStartWith("HTTP/1.1 101");
    for (const text of ["\uFEFFbom", "\uFEFF", "\uFEFF\uFEFFtwo"]) {
      const bytes = new TextEncoder().encode(text);
      socket.write(encodeFrame(1, bytes));
      expect(await next()).toEqual({ kind: "text", data: text, byteLength: bytes.byteLength });
    }
    socket.write(encodeClose(1000, ""));
    expect(await next()).toMatchObject({ kind: "close", code: 1000 });
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // A client's message over 16 MiB closes with 1009 on both sides; a child's closed the client
  // with 1011 "upstream connection lost", as if the child had gone away.
  test("a child message over 16 MiB closes the client with 1009, not as a lost connection", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const { socket, head, next } = await rawUpgrade(sluice.httpPort, `/big?n=${16 * 1024 * 1024 + 1}`, { "x-request-id": "too-big" });
    expect(head).toStartWith("HTTP/1.1 101");
    expect(await next()).toMatchObject({ kind: "close", code: 1009, reason: "message over 16777216 bytes" });
    socket.end();
    const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "too-big");
    expect(access).toMatchObject({ status: 101, outcome: "error", upstreamError: "message over 16777216 bytes" });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Its record said the WebSocket had ended as it should (no outcome, no upstreamError): the
  // Close frame sluice sends the child first made it look like a close sluice began.
  test("a protocol violation by the child gets 1002 and is recorded as an error", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const masked = await rawUpgrade(sluice.httpPort, "/masked", { "x-request-id": "masked-frame" });
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
    const { socket, head, next } = await rawUpgrade(sluice.httpPort, "/empty-fragments?n=1500000");
    expect(head).toStartWith("HTTP/1.1 101");
    const message = await next();
    expect(message).toMatchObject({ kind: "binary" });
    expect(new TextDecoder().decode((message as { data: Uint8Array }).data)).toBe("end");
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(64);
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // The pump that passes the child's messages on lets the event loop take a turn every 10 ms of
  // relaying, but counted those 10 ms from its previous turn, across the waits for the child:
  // every message that came after a pause of 10 ms or more waited for a timer turn first. An
  // echo after each 12 ms pause took some 1.5 ms longer through the binary than directly (a
  // lower quartile of 2.1 ms against 0.6 ms), some 3 ms longer under Deno; 0.3 and 0.6 ms now.
  test("a child's message after a pause is passed on at once, not after a timer turn", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: RAW_WS_APP });
    const direct = await rawUpgrade(sluice.targetPort, "/echo");
    const through = await rawUpgrade(sluice.httpPort, "/echo");
    expect(through.head).toStartWith("HTTP/1.1 101");
    const roundTrip = async ({ socket, nextText }: typeof direct, text: string): Promise<number> => {
      await Bun.sleep(12);
      const sentAt = performance.now();
      socket.write(encodeFrame(1, new TextEncoder().encode(text)));
      expect(await nextText()).toBe(text);
      return performance.now() - sentAt;
    };
    const directMs: number[] = [];
    const throughMs: number[] = [];
    for (let i = 0; i < 60; i++) {
      directMs.push(await roundTrip(direct, `direct ${i}`));
      throughMs.push(await roundTrip(through, `through ${i}`));
    }
    const lowerQuartile = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 4)]!;
    // The relay's own cost, two hops of the runtime's I/O: well under a timer turn on the binary.
    expect(lowerQuartile(throughMs) - lowerQuartile(directMs)).toBeLessThan(target.name === "binary" ? 1 : 1.8);
    direct.socket.end();
    through.socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  // Deno's bufferedAmount counts bytes only, and each message queued for the client costs some
  // 300 bytes beyond its one: sluice read a million 1-byte messages for a client that read none
  // before it stopped reading the child, taking some 500 MiB under Deno.
  test("a child sending tiny messages to a client that stops reading: sluice stops reading the child with its memory bounded", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: RAW_WS_APP, env: { RECORD_FILE: recordFile } });
    const before = rssKiB(sluice.proc.pid, "VmHWM");
    // Three bytes each on the wire. The kernel alone can hold some 13 million of them: sluice's
    // receive buffer from the child grows while sluice reads fast, up to net.ipv4.tcp_rmem's
    // maximum (32 MiB on the CI machines), beside 4 MiB send buffers. Runs held 1.8 to 4 million.
    const count = 30_000_000;
    const { client, sent } = await pausedUntilStalled(`ws://127.0.0.1:${sluice.httpPort}/tiny-messages?n=${count}`, recordFile, "tiny-messages");
    expect(sent).toBeLessThan(count);
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
    // Or until sluice closes the connection.
    const { client, sent } = await pausedUntilStalled(`ws://127.0.0.1:${sluice.httpPort}/pings?n=${count}`, recordFile, "pings", { "x-request-id": "pings" });
    expect(sent).toBeLessThan(count);
    // That sluice stalled the child is `sent` above; this bounds what it held meanwhile. Deno's
    // V8 heap grows by 100-109 MiB here on a quiet machine, and read 128.4 on a busy CI run.
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(target.name === "binary" ? 40 : 160);
    if (target.name === "deno") {
      const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "pings");
      expect(access).toMatchObject({ outcome: "error", upstreamError: "the child fell 16384 messages behind" });
    }
    client.close();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);
});
