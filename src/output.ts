/** @module LineOutput: ordered, whole-line, non-blocking writes to stdout or stderr. */

import type { Runtime } from "./runtime/types.ts";

const encoder = new TextEncoder();

/**
 * Lines are gathered this long before one write: one system call (and one timer) per batch,
 * not per line. At tens of thousands of access records a second, 10 ms batches cost a tenth
 * of 1 ms ones (about 2% of the proxy's CPU), and no reader notices the wait.
 */
const BATCH_MS = 10;

/**
 * Collects lines and writes them in order, many lines per write, never splitting one.
 * Log records and the child's output share stdout through one LineOutput, so lines never
 * interleave. Writes are asynchronous: a slow reader of the pipe slows nothing but the
 * queue, and `flush()` awaits everything written so far (call it before exit).
 */
export class LineOutput {
  #pending: (string | Uint8Array)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #runtime: Runtime;
  #fd: 1 | 2;

  constructor(runtime: Runtime, fd: 1 | 2) {
    this.#runtime = runtime;
    this.#fd = fd;
  }

  /** Queues text that already ends with a newline. */
  write(chunk: string | Uint8Array): void {
    const last = this.#pending.length - 1;
    // Consecutive lines of text join into one string (one per access record adds up).
    if (typeof chunk === "string" && last >= 0 && typeof this.#pending[last] === "string") this.#pending[last] += chunk;
    else this.#pending.push(chunk);
    if (this.#timer === undefined && this.#writing === undefined) {
      this.#timer = setTimeout(() => this.#startDrain(), BATCH_MS);
    }
  }

  /** Resolves when everything queued before the call (and since) has been written. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) this.#startDrain();
    while (this.#writing) await this.#writing;
  }

  #startDrain(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        await this.#runtime.write(this.#fd, concat(batch));
      }
    } catch {
      // stdout closed (EPIPE): nothing sensible to do but drop what cannot be written.
      this.#pending = [];
    } finally {
      this.#writing = undefined;
    }
  }
}

function concat(chunks: (string | Uint8Array)[]): Uint8Array {
  if (chunks.every((c) => typeof c === "string")) return encoder.encode(chunks.join(""));
  const parts = chunks.map((c) => (typeof c === "string" ? encoder.encode(c) : c));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
