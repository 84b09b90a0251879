/**
 * @module Server-sent events through sluice, on the binary and under Deno: events arrive one by
 * one as the child sends them, never compressed, and a stream still open at the drain deadline
 * ends cleanly (a proper end of the body, after a complete event), busy or idle.
 */

import { describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { BUN, ROOT, rssKiB, startSluice, TARGETS } from "../harness.ts";

const WS_APP = [BUN, join(ROOT, "tests/fixtures/ws-app.ts")];

/** Reads the rest of a body; throws when it ends in an error rather than its proper end. */
async function readToEnd(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  let text = "";
  for (let part = await reader.read(); !part.done; part = await reader.read()) text += new TextDecoder().decode(part.value);
  return text;
}

describe.each(TARGETS)("server-sent events ($name)", (target) => {
  test("events arrive one by one as sent, uncompressed", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP });
    const started = performance.now();
    const response = await fetch(`${sluice.url}/sse?events=3&gap=1500`, { headers: { "accept-encoding": "gzip, br" }, decompress: false } as RequestInit);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    expect(response.headers.get("content-encoding")).toBeNull();
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("id: 1\ndata: event 1\n\n");
    expect(performance.now() - started).toBeLessThan(1400); // the child sends event 2 at 1.5 s
    const second = await reader.read();
    expect(new TextDecoder().decode(second.value)).toBe("id: 2\ndata: event 2\n\n");
    expect(await readToEnd(reader)).toBe("id: 3\ndata: event 3\n\n");
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("at the drain deadline, a busy stream and an idle one end cleanly after a whole event", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "1500ms"], child: WS_APP });
    const busy = (await fetch(`${sluice.url}/sse?events=0&gap=200`)).body!.getReader();
    const idle = (await fetch(`${sluice.url}/sse?events=1&hold=1`)).body!.getReader();
    expect(new TextDecoder().decode((await busy.read()).value)).toBe("id: 1\ndata: event 1\n\n");
    expect(new TextDecoder().decode((await idle.read()).value)).toBe("id: 1\ndata: event 1\n\n");
    const stoppedAt = performance.now();
    sluice.signal("SIGTERM");
    const [busyRest, idleRest] = await Promise.all([readToEnd(busy), readToEnd(idle)]);
    expect(performance.now() - stoppedAt).toBeGreaterThanOrEqual(1400); // served until the deadline
    expect(busyRest).toMatch(/^(id: \d+\ndata: event \d+\n\n)+$/);
    expect(busyRest.split("\n\n").length).toBeGreaterThan(3); // events kept coming during the drain
    expect(idleRest).toBe("");
    const complete = await sluice.waitFor("shutdown.complete");
    expect(complete).toMatchObject({ aborted: 2, closed: 2 });
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);

  test("many idle streams held open cost sluice a bounded, small amount of memory each", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"], child: WS_APP });
    /** `count` streams, each open once its first event came. */
    const open = (count: number) => Promise.all(Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(sluice.httpPort, "127.0.0.1", () => socket.write("GET /sse?events=1&hold=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
      socket.on("error", reject);
      let seen = "";
      socket.on("data", (bytes) => {
        seen += bytes.toString();
        if (seen.includes("data: event 1\n\n")) resolve(socket);
      });
    })));
    const drop = (sockets: Socket[]) => sockets.forEach((socket) => socket.destroy());
    drop(await open(200)); // warm up: the runtime's own first-use costs are not the streams'
    await Bun.sleep(1000);
    const beforeKiB = rssKiB(sluice.proc.pid);
    const streams = await open(1000);
    // Measured with 1,000: 20-23 KiB each on the binary; under Deno 136-146 KiB each with a
    // 64 KiB buffer waiting in each read from the app, 88-92 KiB with reads that start at 8 KiB
    // (src/runtime/socket-deno.ts).
    const perStreamKiB = (rssKiB(sluice.proc.pid) - beforeKiB) / 1000;
    drop(streams);
    expect(Math.round(perStreamKiB)).toBeLessThan(115);
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
  }, 60_000);
});
