/** @module LineOutput: ordered, whole-line, non-blocking writes to stdout or stderr. */

import type { Runtime } from "./runtime/types.ts";

const encoder = new TextEncoder();

/**
 * Lines are gathered this long before one write: one system call (and one timer) per batch,
 * not per line. At tens of thousands of access records a second, 10 ms batches cost a tenth
 * of 1 ms ones (about 2% of the proxy's CPU), and no reader notices the wait.
 */
const BATCH_MS = 10;

/** A batch's buffer; a larger one is made for a line that would not fit in an empty one. */
const BATCH_BYTES = 64 * 1024;

/**
 * Written buffers kept for the next batches: a new 64 KiB buffer every 10 ms made the garbage
 * collector run sooner (ArrayBuffers count towards its allocation budget).
 */
const SPARE_BUFFERS = 2;

/**
 * Most bytes queued and not yet written. A reader slower than the child's output (or than
 * the access records) made the queue, and sluice's memory, grow without end: about 170 MiB
 * a second from a child printing as fast as it could. A child's output waits for room
 * instead (`untilRoom`), so what fills the queue past half is sluice's own records, while
 * the reader is stuck: past this, new lines are dropped and counted.
 */
export const MAX_QUEUED_BYTES = 8 * 1024 * 1024;

/**
 * Collects lines and writes them in order, many lines per write, never splitting one.
 * Log records and the child's output share stdout through one LineOutput, so lines never
 * interleave. Each line is encoded into the batch's buffer as it comes (a line's string
 * dies at once instead of living until the write). Writes are asynchronous: a slow reader
 * of the pipe slows nothing but the queue, and `flush()` awaits everything written so far
 * (call it before exit). The queue is bounded: lines that find it full are dropped, and
 * `onDropped` hears how many once it has room again.
 */
export class LineOutput {
  #buffer = new Uint8Array(BATCH_BYTES);
  #length = 0;
  /** Buffers whose write has finished, for the next batches. */
  #spare: Uint8Array<ArrayBuffer>[] = [];
  /** Batches full before their timer, waiting for the write in progress. */
  #full: Uint8Array<ArrayBuffer>[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  /** Bytes in the #full batches. */
  #fullBytes = 0;
  /** Lines dropped since the last onDropped call. */
  #dropped = 0;
  /** Set by finish(): the stop's last records are being written. */
  #finishing = false;
  /** Writers waiting for the queue to be at most half full (untilRoom). */
  #roomWaiters: (() => void)[] = [];
  #runtime: Runtime;
  #fd: 1 | 2;
  #maxQueuedBytes: number;
  /** Told how many lines were dropped, once the queue has room again (it may write to this output). */
  onDropped: ((lines: number) => void) | undefined;

  constructor(runtime: Runtime, fd: 1 | 2, { maxQueuedBytes = MAX_QUEUED_BYTES }: { maxQueuedBytes?: number } = {}) {
    this.#runtime = runtime;
    this.#fd = fd;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /**
   * For a writer that can wait rather than lose lines: undefined while at most half the
   * queue is used, else a promise resolved once it is. A child's output waits here, and its
   * pipe is not read meanwhile, so the child waits in write() as it would on a slow stdout
   * of its own.
   */
  untilRoom(): Promise<void> | undefined {
    if (this.#fullBytes + this.#length <= this.#maxQueuedBytes / 2) return undefined;
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
  }

  /**
   * For the stop's last records (call it before the shutdown record): says at once how many
   * lines were dropped so far, then takes sluice's own records (text) whatever the queue
   * holds: only a few are left to write, and the last of them must neither be dropped nor
   * come before the report of what was. The child's output (bytes) stays bounded; what of
   * it is dropped from now on (a process outside the child's group still writing to its
   * pipe) is no longer reported: a record would come after the shutdown record.
   */
  finish(): void {
    if (this.#finishing) return;
    this.#finishing = true;
    this.#reportDropped();
  }

  /**
   * Queues text or bytes that already end with a newline; drops them when the queue is full
   * (see finish). `final`: a child's output that no longer waits for room (its group is gone
   * and what is left in its pipe must come before the shutdown record); it may take the
   * queue half its bound further, past what sluice's own records filled, so that it is not
   * dropped for them, while a process outside the group that keeps writing stays bounded.
   */
  write(chunk: string | Uint8Array, final = false): void {
    const text = typeof chunk === "string";
    const limit = final ? this.#maxQueuedBytes * 1.5 : this.#maxQueuedBytes;
    // A string's UTF-16 length is at most its UTF-8 length: a cheap lower bound.
    if (this.#fullBytes + this.#length + (text ? chunk.length : chunk.byteLength) > limit && !(text && this.#finishing)) {
      this.#dropped += text ? 1 : countLines(chunk);
      return;
    }
    if (typeof chunk === "string") {
      // At most 3 bytes per UTF-16 unit: encodeInto never comes up short when that fits.
      this.#reserve(chunk.length * 3);
      this.#length += encoder.encodeInto(chunk, this.#buffer.subarray(this.#length)).written;
    } else {
      this.#reserve(chunk.byteLength);
      this.#buffer.set(chunk, this.#length);
      this.#length += chunk.byteLength;
    }
    if (this.#timer === undefined && this.#writing === undefined) {
      this.#timer = setTimeout(() => this.#startDrain(), BATCH_MS);
    }
  }

  /** Resolves when everything queued before the call (and since) has been written. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) this.#startDrain();
    while (this.#writing) await this.#writing;
  }

  /** Makes room for `bytes` more: a full batch is set aside whole, a larger line gets a larger buffer. */
  #reserve(bytes: number): void {
    if (this.#length + bytes <= this.#buffer.byteLength) return;
    if (this.#length > 0) {
      this.#fullBytes += this.#length;
      this.#full.push(this.#take());
    }
    if (bytes > this.#buffer.byteLength) this.#buffer = new Uint8Array(bytes);
  }

  /** The bytes queued in the current buffer, which a spare or new one replaces (the write holds on to them). */
  #take(): Uint8Array<ArrayBuffer> {
    const bytes = this.#buffer.subarray(0, this.#length);
    this.#buffer = this.#spare.pop() ?? new Uint8Array(BATCH_BYTES);
    this.#length = 0;
    return bytes;
  }

  /** A batch's buffer once its write has finished: kept for reuse when of the usual size. */
  #recycle(batch: Uint8Array<ArrayBuffer>): void {
    if (batch.buffer.byteLength === BATCH_BYTES && this.#spare.length < SPARE_BUFFERS) {
      this.#spare.push(new Uint8Array(batch.buffer));
    }
  }

  /** Once at most half the queue is used: says how many lines were dropped before, and wakes waiting writers. */
  #madeRoom(): void {
    if (this.#fullBytes + this.#length > this.#maxQueuedBytes / 2) return;
    if (!this.#finishing) this.#reportDropped();
    for (const wake of this.#roomWaiters.splice(0)) wake();
  }

  /** Tells onDropped how many lines were dropped since it last heard, if any. */
  #reportDropped(): void {
    if (this.#dropped === 0) return;
    const lines = this.#dropped;
    this.#dropped = 0;
    this.onDropped?.(lines);
  }

  #startDrain(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#full.length > 0 || this.#length > 0) {
        const full = this.#full.shift();
        if (full) this.#fullBytes -= full.byteLength;
        const batch = full ?? this.#take();
        await this.#runtime.write(this.#fd, batch);
        this.#recycle(batch);
        this.#madeRoom();
      }
    } catch {
      // stdout closed (EPIPE): nothing sensible to do but drop what cannot be written.
      this.#full = [];
      this.#fullBytes = 0;
      this.#length = 0;
      this.#madeRoom();
    } finally {
      this.#writing = undefined;
    }
  }
}

/** Lines in bytes that end with a newline (a child's output comes in chunks of several). */
function countLines(bytes: Uint8Array): number {
  let lines = 0;
  for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) lines++;
  return lines;
}
