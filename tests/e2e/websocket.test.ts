/**
 * @module WebSockets through sluice, on the binary and under Deno, with a real WebSocket child
 * (tests/fixtures/ws-app.ts) and the test runner's WebSocket client: subprotocols, headers to the
 * child, text and binary messages, pings, close codes both ways, refusals, held upgrades,
 * backpressure both ways, message size limits, bad handshakes, clients that vanish, access
 * records, and the stop (1001 at the drain deadline, before the child's SIGTERM).
 */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { encodeFrame, Opcode } from "../../src/websockets/frames.ts";
import { BUN, readMetrics, ROOT, rssKiB, startSluice, TARGETS, tempDir, until } from "../harness.ts";
import { rawUpgrade } from "../raw-websocket.ts";

const WS_APP = [BUN, join(ROOT, "tests/fixtures/ws-app.ts")];

type ChildRecord = { event: string; at: number } & { [key: string]: unknown };

function records(file: string): ChildRecord[] {
  try {
    return readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as ChildRecord);
  } catch {
    return [];
  }
}

/** A client with a queue of received messages and the events a test waits on. */
class Client {
  readonly ws: WebSocket;
  readonly #inbox: (string | ArrayBuffer)[] = [];
  #wake: (() => void) | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
  readonly pings: Uint8Array[] = [];
  readonly pongs: Uint8Array[] = [];

  constructor(url: string, options: { protocols?: string[]; headers?: Record<string, string> } = {}) {
    this.ws = new WebSocket(url, options as unknown as string[]);
    this.ws.binaryType = "arraybuffer";
    this.ws.addEventListener("message", (event) => {
      this.#inbox.push(event.data);
      this.#wake?.();
    });
    // Bun's client reports pings (already answered) and pongs; browsers do not.
    this.ws.addEventListener("ping", (event) => void this.pings.push(new Uint8Array((event as MessageEvent).data)));
    this.ws.addEventListener("pong", (event) => void this.pongs.push(new Uint8Array((event as MessageEvent).data)));
    this.closed = new Promise((resolve) =>
      this.ws.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason, at: Date.now() })));
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve());
      void this.closed.then((event) => reject(new Error(`closed before open: ${event.code}`)));
    });
  }

  async next(timeoutMs = 20_000): Promise<string | ArrayBuffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.#inbox.length === 0) {
      if (Date.now() > deadline) throw new Error("no message");
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 100);
      });
    }
    return this.#inbox.shift()!;
  }
}

const wsUrl = (httpUrl: string, path: string) => httpUrl.replace("http:", "ws:") + path;

describe.each(TARGETS)("websockets ($name)", (target) => {
  test("subprotocol, forwarded headers, text and 1 MiB binary messages, pings both ways, close codes both ways", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const client = new Client(wsUrl(sluice.url, "/ws"), { protocols: ["chat.v1", "chat.v2"], headers: { cookie: "session=abc", "x-request-id": "ws-test-1" } });
    await client.opened;
    expect(client.ws.protocol).toBe("chat.v2");

    client.ws.send("headers");
    const seen = JSON.parse(await client.next() as string) as Record<string, string>;
    expect(seen.cookie).toBe("session=abc");
    expect(seen.host).toBe(`127.0.0.1:${sluice.httpPort}`);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-request-id"]).toBe("ws-test-1");
    expect(seen["sec-websocket-protocol"]).toBe("chat.v1, chat.v2");
    expect(seen["sec-websocket-extensions"]).toBeUndefined();

    client.ws.send("héllo ✓");
    expect(await client.next()).toBe("héllo ✓");
    const big = crypto.getRandomValues(new Uint8Array(1024 * 1024));
    client.ws.send(big);
    expect(new Uint8Array(await client.next() as ArrayBuffer)).toEqual(big);

    // The child pings: its pong comes back (from the client on Bun, from sluice on Deno).
    client.ws.send("ping:c1");
    expect(await client.next()).toBe("pong:c1");
    if (target.name === "binary") expect(client.pings.map((p) => new TextDecoder().decode(p))).toContain("c1");
    // The client pings: it always gets its pong; on Bun the child sees the ping too, and no second pong comes.
    (client.ws as unknown as { ping(data: string): void }).ping("p1");
    await until(() => client.pongs.length === 1, 10_000, "the pong");
    if (target.name === "binary") expect(await client.next()).toBe("got-ping:p1");

    client.ws.send("close:4001:bye now");
    expect(await client.closed).toMatchObject({ code: 4001, reason: "bye now" });
    expect(client.pongs).toHaveLength(1);

    const second = new Client(wsUrl(sluice.url, "/ws"));
    await second.opened;
    expect(second.ws.protocol).toBe("");
    second.ws.close(4002, "client bye");
    await until(() => records(recordFile).some((r) => r.event === "ws-close" && r.code === 4002 && r.reason === "client bye"), 10_000, "the child's close record");

    const access = await sluice.waitFor((r) => r.event === "access" && r.status === 101 && r.requestId === "ws-test-1");
    expect(access.bytesIn as number).toBeGreaterThan(1024 * 1024);
    expect(access.bytesOut as number).toBeGreaterThan(1024 * 1024);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  test("the handshake drops forwarding headers named with underscores (X_Forwarded_Ssl), from any peer, as a request does", async () => {
    for (const args of [[], ["--trusted-proxies", "127.0.0.1"]]) {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", ...args], child: WS_APP });
      const headers = { x_forwarded_ssl: "on", x_forwarded_port: "8443", "x-forwarded_proto": "https", x_forwarded_for: "203.0.113.9", x_custom_thing: "kept" };
      const client = new Client(wsUrl(sluice.url, "/ws"), { headers });
      await client.opened;
      client.ws.send("headers");
      const seen = JSON.parse(await client.next() as string) as Record<string, string>;
      expect(Object.keys(seen).filter((name) => name.includes("_"))).toEqual(["x_custom_thing"]);
      expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
      expect(seen["x-forwarded-proto"]).toBe("http");
      client.ws.close();
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }
  }, 60_000);

  test("a refused upgrade reaches the client as the child's own answer", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP });
    const answer = await rawHandshake(sluice.httpPort, "/refuse");
    expect(answer).toStartWith("HTTP/1.1 403");
    expect(answer.toLowerCase()).toContain("x-refused-by: app");
    expect(answer).toContain("\r\n\r\n"); // the body follows (framed as the runtime likes)
    expect(answer).toContain("forbidden\n");
    const notFound = await rawHandshake(sluice.httpPort, "/nowhere");
    expect(notFound).toStartWith("HTTP/1.1 404");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("an upgrade that arrives before the child listens is held, then connects", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { APP_BIND_DELAY_MS: "1500" }, waitReady: false });
    await sluice.waitFor("listening");
    const client = new Client(wsUrl(sluice.url, "/ws"));
    await client.opened;
    client.ws.send("after the hold");
    expect(await client.next()).toBe("after the hold");
    // Its record may still be in sluice's 10 ms log batch when the echo comes back.
    await sluice.waitFor("ready", 10_000);
    client.ws.close(1000);
    await client.closed;
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("at stop, an open WebSocket gets 1001 at the drain deadline (Deno: when the listener closes), one the child closes first ends then, and the child hears SIGTERM after both", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "3s"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const open = new Client(wsUrl(sluice.url, "/ws"));
    const closing = new Client(wsUrl(sluice.url, "/ws"));
    await Promise.all([open.opened, closing.opened]);
    closing.ws.send("close-in:800:4003");
    const stoppedAt = Date.now();
    sluice.signal("SIGTERM");
    const [cut, early] = await Promise.all([open.closed, closing.closed]);
    expect(cut.code).toBe(1001);
    const complete = await sluice.waitFor("shutdown.complete");
    expect(await sluice.exitCode()).toBe(0);
    const childRecords = records(recordFile);
    const sigterm = childRecords.find((r) => r.event === "sigterm")!;
    const childCut = childRecords.find((r) => r.event === "ws-close" && r.code === 1001)!;
    expect(childCut.at).toBeLessThanOrEqual(sigterm.at);
    if (target.name === "binary") {
      expect(early.code).toBe(4003);
      expect(early.at - stoppedAt).toBeLessThan(2500);
      expect(cut.at - stoppedAt).toBeGreaterThanOrEqual(2900); // not before the drain deadline
      expect(complete).toMatchObject({ drained: 1, aborted: 1, closed: 1 });
    } else {
      // Deno closes every WebSocket with 1001 itself as soon as its listener closes (runtime notes).
      expect(early.code).toBe(1001);
      expect(cut.at - stoppedAt).toBeLessThan(2500);
      expect(complete).toMatchObject({ aborted: 0 });
    }
  }, 90_000);

  test("a rolling restart: a WebSocket open on the old child gets 1001 at --drain-timeout, before the old child's SIGTERM; new ones open to the new child", async () => {
    const recordFile = join(tempDir(), "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const open = new Client(wsUrl(sluice.url, "/ws"));
    await open.opened;
    const signalledAt = Date.now();
    sluice.signal("SIGUSR2");
    const cut = await open.closed;
    expect(cut.code).toBe(1001);
    expect(cut.at - signalledAt).toBeGreaterThanOrEqual(900); // not before the drain deadline
    const record = await sluice.waitFor("rolling-restart");
    expect(record).toMatchObject({ result: "ok", drained: 0, aborted: 1, killed: 0 });
    const childRecords = records(recordFile);
    const sigterm = childRecords.find((r) => r.event === "sigterm")!;
    expect(childRecords.find((r) => r.event === "ws-close" && r.code === 1001)!.at).toBeLessThanOrEqual(sigterm.at);
    const fresh = new Client(wsUrl(sluice.url, "/ws"));
    await fresh.opened;
    fresh.ws.send("hello");
    expect(await fresh.next()).toBe("hello");
    fresh.ws.close();
    await fresh.closed;
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // The old child's answer to the 1001 is what ends the exchange, within the close grace:
  // a stop that began in that moment wrote `interrupted` with no count, as if nothing were cut.
  test("a rolling restart: a stop while the WebSocket cut at --drain-timeout waits for the old child's close: the interrupted record counts it", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "300ms", "--stop-timeout", "1s"], child: WS_APP });
    const oldPid = sluice.childPid!;
    const open = new Client(wsUrl(sluice.url, "/ws"));
    await open.opened;
    sluice.signal("SIGUSR2");
    await sluice.waitFor((r) => r.event === "child.ready" && r.pid !== oldPid);
    // Stopped, the old child cannot answer the 1001 sluice sends it at the deadline.
    process.kill(oldPid, "SIGSTOP");
    try {
      const cut = await open.closed;
      expect(cut.code).toBe(1001);
      sluice.signal("SIGTERM");
      const record = await sluice.waitFor("rolling-restart");
      expect(record).toMatchObject({ result: "interrupted", pid: oldPid, oldChildSignalled: false, drained: 0, aborted: 1 });
    } finally {
      process.kill(oldPid, "SIGCONT");
    }
    expect([0, 75]).toContain(await sluice.exitCode());
    // Counted once, by the rolling restart: the stop waited for its end (or cut it) but
    // counts it neither as drained nor as aborted (it counted it again as one or the other).
    expect(sluice.events("shutdown.complete")[0]).toMatchObject({ drained: 0, aborted: 0, closed: 0 });
  }, 90_000);

  test("backpressure: a client that stops reading stalls the child instead of filling sluice's memory", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const client = new Client(wsUrl(sluice.url, "/ws"));
    await client.opened;
    const before = rssKiB(sluice.proc.pid);
    expect((client.ws as unknown as { pause(): boolean }).pause()).toBe(true);
    const count = 128;
    client.ws.send(`flood:${count}:${1024 * 1024}`); // 128 MiB
    await until(() => records(recordFile).some((r) => r.event === "flood"), 20_000, "the child to wait on backpressure");
    await Bun.sleep(1000);
    const stalled = records(recordFile).filter((r) => r.event === "flood").at(-1)!.sent as number;
    expect(records(recordFile).some((r) => r.event === "flood-done")).toBe(false);
    const grownMiB = (rssKiB(sluice.proc.pid) - before) / 1024;
    expect(grownMiB).toBeLessThan(64); // the 128 MiB were not buffered in sluice
    (client.ws as unknown as { resume(): boolean }).resume();
    let received = 0;
    while (received < count) {
      const message = await client.next();
      expect((message as ArrayBuffer).byteLength).toBe(1024 * 1024);
      received++;
    }
    expect(stalled).toBeLessThan(count);
    await until(() => records(recordFile).some((r) => r.event === "flood-done"), 10_000, "the flood to finish");
    client.ws.close(1000);
    await client.closed;
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 120_000);

  test("a client flooding an app that stops reading: sluice stays up with bounded memory (Bun pauses the client, Deno closes it with 1008)", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: WS_APP });
    const client = new Client(wsUrl(sluice.url, "/ws"));
    await client.opened;
    client.ws.send("deaf");
    expect(await client.next()).toBe("deaf");
    let closed: { code: number } | undefined;
    void client.closed.then((event) => (closed = event));
    const before = rssKiB(sluice.proc.pid);
    const chunk = new Uint8Array(1024 * 1024);
    /** True once the client's own queue stays over 4 MiB for 3 s: nothing takes its bytes any more. */
    const stalled = async (): Promise<boolean> => {
      const deadline = Date.now() + 3000;
      while (client.ws.bufferedAmount > 4 * 1024 * 1024 && closed === undefined) {
        if (Date.now() > deadline) return true;
        await Bun.sleep(20);
      }
      return false;
    };
    let sent = 0;
    while (sent < 256 && closed === undefined) { // 256 MiB at most
      client.ws.send(chunk);
      sent++;
      if (await stalled()) break;
    }
    if (target.name === "binary") {
      expect(closed).toBeUndefined();
      expect(sent).toBeLessThan(256);
    } else {
      await client.closed;
      // 1008, or a reset when the closed connection still had the client's unread bytes.
      expect([1006, 1008]).toContain(closed!.code);
      const access = await sluice.waitFor((r) => r.event === "access" && r.status === 101);
      expect(access).toMatchObject({ outcome: "error", upstreamError: "the child fell 67108864 bytes behind" });
    }
    expect(sluice.proc.exitCode).toBeNull();
    expect((rssKiB(sluice.proc.pid) - before) / 1024).toBeLessThan(160); // Deno: up to 64 MiB queued for the child
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // The child's messages already buffered were passed on one after another without a turn of
  // the event loop: with a client reading three million 1-byte ones, the binary answered no
  // other request for 30 s and handled a SIGTERM 11 s late; here, where the client closes at
  // once and the rest is dropped, a request waited 1.6-1.9 s on either target.
  test("a child sending tiny messages fast does not hold up sluice: other requests are answered, and a close ends within its wait", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: WS_APP });
    const client = new Client(wsUrl(sluice.url, "/ws"), { headers: { "x-request-id": "tiny-flood" } });
    await client.opened;
    client.ws.send("flood:3000000:1");
    await client.next(); // the flood has begun
    client.ws.close(1000); // the messages still coming are read and dropped until the child's Close frame, 1 s at most
    const closedAt = Date.now();
    const started = performance.now();
    const response = await fetch(`${sluice.url}/nowhere`);
    expect(response.status).toBe(404);
    await response.text();
    expect(performance.now() - started).toBeLessThan(1000);
    await sluice.waitFor((r) => r.event === "access" && r.requestId === "tiny-flood", 30_000);
    expect(Date.now() - closedAt).toBeLessThan(3000);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  // Each frame waiting for the child costs about 1 KiB under Deno, and only its bytes (7) counted
  // against the 64 MiB limit: this flood took 750-870 MiB there before the client was closed.
  test("a client sending tiny messages to an app that stops reading: sluice's memory stays bounded (Bun pauses the client, Deno closes it with 1008)", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1s"], child: WS_APP });
    const { socket, head, nextText } = await rawUpgrade(sluice.httpPort, "/ws", { "x-request-id": "tiny-messages" });
    expect(head).toStartWith("HTTP/1.1 101");
    socket.write(encodeFrame(Opcode.text, new TextEncoder().encode("deaf")));
    expect(await nextText()).toBe("deaf");
    const before = rssKiB(sluice.proc.pid, "VmHWM");
    const one = encodeFrame(Opcode.binary, new Uint8Array(1));
    const batch = new Uint8Array(one.byteLength * 10_000);
    for (let i = 0; i < 10_000; i++) batch.set(one, i * one.byteLength);
    // Two million messages (14 MiB on the wire, past what the sockets' buffers hold) at most,
    // until sluice takes none for 3 s or closes the WebSocket.
    let closing = false;
    void nextText().catch(() => (closing = true));
    let sent = 0;
    let progressAt = Date.now();
    for (let pending = batch; sent < 2_000_000 && !closing && Date.now() - progressAt < 3000;) {
      const written = socket.write(pending);
      if (written < 0) break; // closed
      if (written === pending.byteLength) {
        sent += 10_000;
        pending = batch;
        progressAt = Date.now();
        if (sent % 100_000 === 0) await Bun.sleep(1); // lets the close be read
      } else {
        if (written > 0) progressAt = Date.now();
        pending = pending.subarray(written);
        await Bun.sleep(10);
      }
    }
    await Bun.sleep(500);
    expect(sluice.proc.exitCode).toBeNull();
    expect((rssKiB(sluice.proc.pid, "VmHWM") - before) / 1024).toBeLessThan(128);
    if (target.name === "deno") {
      const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "tiny-messages");
      expect(access).toMatchObject({ outcome: "error", upstreamError: "the child fell 16384 messages behind" });
    }
    socket.end();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 90_000);

  test("a client that goes away without a Close frame: the child hears 1001 (going away), a valid Close frame", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const { socket, head } = await rawUpgrade(sluice.httpPort, "/ws");
    expect(head).toStartWith("HTTP/1.1 101");
    socket.end(); // the TCP connection ends, no Close frame
    await until(() => records(recordFile).some((r) => r.event === "ws-close"), 10_000, "the child's close record");
    expect(records(recordFile).find((r) => r.event === "ws-close")).toMatchObject({ code: 1001 });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("clients reset just as their upgrade completes: every exchange ends, nothing stays in flight", async () => {
    // Deno 2.9.6 left such a WebSocket connecting for good (no open, no close): sluice counted
    // it in flight for ever, and a rolling restart's drain waited for it. (Deno's own server
    // shutdown still waits for those connections: the stop ends at --drain-timeout.)
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "5s"], child: WS_APP });
    const handshake = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for (let round = 0; round < 3; round++) {
      const sockets = await Promise.all(Array.from({ length: 300 }, () =>
        new Promise<Socket>((resolve) => {
          const socket = connect(sluice.httpPort, "127.0.0.1", () => resolve(socket));
          socket.on("error", () => {});
        })));
      for (const socket of sockets) socket.write(handshake);
      // Cut them over the next moments, some before their 101, some as it is sent, some after.
      for (const [i, socket] of sockets.entries()) setTimeout(() => socket.resetAndDestroy(), i % 60);
      await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 0, 30_000, `round ${round}: nothing in flight`);
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.events("shutdown.complete")[0]).toMatchObject({ aborted: 0 });
  }, 180_000);

  test("the access record counts message bytes as sent on the wire (UTF-8), both ways", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP });
    const client = new Client(wsUrl(sluice.url, "/ws"), { headers: { "x-request-id": "ws-bytes" } });
    await client.opened;
    client.ws.send("héllo ✓"); // 7 characters, 10 bytes
    expect(await client.next()).toBe("héllo ✓");
    client.ws.send(new Uint8Array(5));
    expect(((await client.next()) as ArrayBuffer).byteLength).toBe(5);
    client.ws.close(1000);
    await client.closed;
    const access = await sluice.waitFor((r) => r.event === "access" && r.requestId === "ws-bytes");
    expect(access).toMatchObject({ status: 101, bytesIn: 15, bytesOut: 15 });
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a handshake of another WebSocket version or with a malformed key is refused before the child is asked (426, 400)", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const version8 = await rawUpgrade(sluice.httpPort, "/ws", { "sec-websocket-version": "8" });
    expect(version8.head).toStartWith("HTTP/1.1 426");
    expect(version8.head.toLowerCase()).toContain("sec-websocket-version: 13\r\n");
    version8.socket.end();
    const badKey = await rawUpgrade(sluice.httpPort, "/ws", { "sec-websocket-key": "c2hvcnQ=" });
    expect(badKey.head).toStartWith("HTTP/1.1 400");
    badKey.socket.end();
    const statuses = [await sluice.waitFor((r) => r.event === "access"), await sluice.waitFor((r) => r.event === "access" && r.status !== 426)];
    expect(statuses.map((r) => r.status)).toEqual([426, 400]);
    // A proper upgrade afterwards: the child's first connection, and its only one.
    const client = new Client(wsUrl(sluice.url, "/ws"));
    await client.opened;
    client.ws.close(4000);
    await until(() => records(recordFile).some((r) => r.event === "ws-close"), 10_000, "the child's close record");
    expect(records(recordFile).filter((r) => r.event === "ws-close").map((r) => r.code)).toEqual([4000]);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a handshake sent with a body reaches the child without the body's length (Deno refuses it itself: 400)", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--upstream-timeout", "5s"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    // Bun hands the handshake over without its body (a GET's body is read and dropped). The
    // child was told `content-length: 3` and never sent the bytes: the upgrade waited for
    // them (504 at --upstream-timeout), or a child could take the start of the first frame for them.
    const upgrade = await rawUpgrade(sluice.httpPort, "/ws", { "content-length": "3" }, "abc");
    if (target.name === "deno") {
      expect(upgrade.head).toStartWith("HTTP/1.1 400"); // Deno 2.9.6 itself (docs/runtime-notes.md)
      upgrade.socket.end();
    } else {
      expect(upgrade.head).toStartWith("HTTP/1.1 101");
      upgrade.socket.write(encodeFrame(Opcode.text, new TextEncoder().encode("headers")));
      const headers = JSON.parse(await upgrade.nextText()) as Record<string, string>;
      expect(headers["content-length"]).toBeUndefined();
      expect(headers["transfer-encoding"]).toBeUndefined();
      upgrade.socket.end();
    }
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("a client message over 16 MiB closes with 1009 on both sides and never reaches the child", async () => {
    const dir = tempDir();
    const recordFile = join(dir, "record.jsonl");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP, env: { RECORD_FILE: recordFile } });
    const client = new Client(wsUrl(sluice.url, "/ws"));
    await client.opened;
    client.ws.send(new Uint8Array(16 * 1024 * 1024 + 1)); // the child takes up to 32 MiB and would echo it
    expect((await client.closed).code).toBe(1009);
    await until(() => records(recordFile).some((r) => r.event === "ws-close"), 10_000, "the child's close record");
    expect(records(recordFile).find((r) => r.event === "ws-close")).toMatchObject({ code: 1009 });
    await expect(client.next(500)).rejects.toThrow("no message");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);
});

/** Sends a WebSocket handshake by hand and returns the whole answer (the connection is closed after it). */
async function rawHandshake(port: number, path: string): Promise<string> {
  let answer = "";
  const { promise: done, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, bytes) {
        answer += new TextDecoder().decode(bytes);
        if (/\r\n\r\n[\s\S]*(forbidden\n|not found\n|\r\n0\r\n\r\n)$/.test(answer)) resolve();
      },
      close: () => resolve(),
    },
  });
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  await Promise.race([done, Bun.sleep(20_000)]);
  socket.end();
  return answer;
}
