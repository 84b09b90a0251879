/**
 * @module LineOutput against a slow writer: lines arrive whole and in order, and a batch's
 * buffer is only written into again after its write has finished (buffers are reused).
 */

import { describe, expect, test } from "bun:test";
import { LineOutput } from "../../src/output.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";

const decoder = new TextDecoder();

/**
 * A writer that takes `delayMs` per write and reads the bytes only when the write finishes,
 * as a slow pipe's reader would: a buffer reused too early shows up as wrong text.
 */
function slowWriter(delayMs: number) {
  const received: string[] = [];
  const buffers = new Set<ArrayBufferLike>();
  let writes = 0;
  const write = async (_fd: 1 | 2, bytes: Uint8Array): Promise<void> => {
    writes++;
    buffers.add(bytes.buffer);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    received.push(decoder.decode(bytes));
  };
  return { write, received, buffers, writes: () => writes };
}

describe("LineOutput", () => {
  test("bursts larger than a batch, through a slow writer, arrive whole and in order", async () => {
    const writer = slowWriter(20);
    const out = new LineOutput({ ...bunRuntime, write: writer.write }, 1);
    const lines: string[] = [];
    // About 1.2 MiB in bursts: batches fill before their timer and queue behind slow writes.
    for (let burst = 0; burst < 10; burst++) {
      for (let i = 0; i < 1000; i++) {
        const line = `{"burst":${burst},"line":${i},"pad":"${"x".repeat(i % 200)}"}\n`;
        lines.push(line);
        out.write(i % 2 === 0 ? line : new TextEncoder().encode(line));
      }
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    await out.flush();
    expect(writer.received.join("")).toBe(lines.join(""));
    expect(writer.writes()).toBeGreaterThan(10);
    for (const batch of writer.received) expect(batch.endsWith("\n")).toBe(true);
  });

  test("a steady stream of lines is written batch after batch on the same few buffers", async () => {
    const writer = slowWriter(8);
    const out = new LineOutput({ ...bunRuntime, write: writer.write }, 1);
    const lines: string[] = [];
    for (let tick = 0; tick < 20; tick++) {
      for (let i = 0; i < 200; i++) {
        const line = `{"tick":${tick},"line":${i},"path":"/assets/app-${i}.css"}\n`;
        lines.push(line);
        out.write(line);
      }
      await new Promise((resolve) => setTimeout(resolve, 15));
    }
    await out.flush();
    expect(writer.received.join("")).toBe(lines.join(""));
    expect(writer.writes()).toBeGreaterThanOrEqual(15);
    // A new 64 KiB buffer per batch before; now the written ones are filled again.
    expect(writer.buffers.size).toBeLessThanOrEqual(3);
  });

  test("a line larger than a batch buffer goes out whole, and the usual buffers are still reused", async () => {
    const writer = slowWriter(5);
    const out = new LineOutput({ ...bunRuntime, write: writer.write }, 2);
    const big = `${"y".repeat(200 * 1024)}\n`;
    const expected: string[] = [];
    for (let round = 0; round < 5; round++) {
      for (const line of [`small ${round}\n`, big, `after ${round}\n`]) {
        expected.push(line);
        out.write(line);
      }
      await out.flush();
    }
    expect(writer.received.join("")).toBe(expected.join(""));
  });

  test("a full queue drops whole lines, counts them, and says so once it has room again", async () => {
    const writer = slowWriter(20);
    const out = new LineOutput({ ...bunRuntime, write: writer.write }, 1, { maxQueuedBytes: 10_000 });
    const reports: number[] = [];
    out.onDropped = (lines) => {
      reports.push(lines);
      out.write(`dropped ${lines}\n`);
    };
    const line = `${"z".repeat(99)}\n`; // 100 bytes
    for (let i = 0; i < 300; i++) out.write(i % 2 === 0 ? line : new TextEncoder().encode(line));
    out.write(new TextEncoder().encode(line.repeat(3))); // three lines in one chunk, as a child's output comes
    await out.flush();
    expect(reports).toEqual([203]);
    const text = writer.received.join("");
    expect(text).toBe(`${line.repeat(100)}dropped 203\n`);
  });

  test("a writer that waits for room (a child's output) loses nothing, however far behind the reader is", async () => {
    const writer = slowWriter(20);
    const out = new LineOutput({ ...bunRuntime, write: writer.write }, 1, { maxQueuedBytes: 10_000 });
    let dropped = 0;
    out.onDropped = (lines) => (dropped += lines);
    const line = new TextEncoder().encode(`${"w".repeat(99)}\n`);
    let waits = 0;
    for (let i = 0; i < 300; i++) {
      const room = out.untilRoom();
      if (room) {
        waits++;
        await room;
      }
      out.write(line);
    }
    await out.flush();
    expect(waits).toBeGreaterThan(0);
    expect(dropped).toBe(0);
    expect(writer.received.join("")).toBe(new TextDecoder().decode(line).repeat(300));
  });
});
