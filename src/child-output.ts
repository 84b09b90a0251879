/** @module pipeLines: copies a child's output to sluice's own, whole lines at a time. */

import { raceDeadline } from "./deadlines.ts";
import type { LineOutput } from "./output.ts";

const NEWLINE = 10;
/** A line longer than this is passed on in pieces rather than held without bound. */
const MAX_HELD_BYTES = 64 * 1024;

/**
 * Reads `stream` to its end and writes it to `out` in whole lines, so a child's line never
 * interleaves with sluice's log records or the other stream's lines. A last line without
 * a newline gets one. Once `finishing` aborts (the child's group is gone), it no longer
 * waits for room in `out`: there is no child left to hold back, and what is left in the
 * pipe (its capacity at most) must come before sluice's last record; `out` takes it past
 * the room sluice's own records left (LineOutput.write's `final`).
 */
export async function pipeLines(stream: ReadableStream<Uint8Array>, out: LineOutput, finishing?: AbortSignal): Promise<void> {
  let held: Uint8Array = new Uint8Array(0);
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      // While sluice's own output is far behind, the chunk waits and the pipe is not read: the
      // child waits, no line is lost. Asked after the read, not before: a child silent while
      // sluice's own records filled the queue had its next line dropped.
      await untilRoom(out, finishing);
      const final = finishing?.aborted === true;
      const lastNewline = chunk.lastIndexOf(NEWLINE);
      if (lastNewline < 0) {
        held = join(held, chunk);
        if (held.length > MAX_HELD_BYTES) {
          out.write(join(held, Uint8Array.of(NEWLINE)), final);
          held = new Uint8Array(0);
        }
        continue;
      }
      out.write(join(held, chunk.subarray(0, lastNewline + 1)), final);
      held = chunk.slice(lastNewline + 1);
    }
  } catch {
    // The pipe broke (child killed): pass on what was read.
  }
  if (held.length > 0) {
    await untilRoom(out, finishing);
    out.write(join(held, Uint8Array.of(NEWLINE)), finishing?.aborted === true);
  }
}

/** Until `out` has room for a child's output, or `finishing` aborts. */
async function untilRoom(out: LineOutput, finishing: AbortSignal | undefined): Promise<void> {
  const room = out.untilRoom();
  if (room) await raceDeadline(room, undefined, finishing);
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
