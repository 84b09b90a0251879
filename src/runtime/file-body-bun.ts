/**
 * @module A file's bytes as a Bun response: a small file read whole from one descriptor; a
 * larger one sent with sendfile(2), read as a stream that notices a short file.
 */

import { isPermissionDenied } from "../read-errors.ts";
import type { OpenLibc } from "./libc.ts";
import type { BunLibc } from "./libc-bun.ts";
import type { NoFile, OpenFile } from "./types.ts";

/**
 * A Response around a Blob slice of a file. Bun.serve sends the Blob itself (sendfile(2),
 * with its Content-Length), never through `body`. `body` is for JS readers (compression, the
 * cache): Bun's own stream of a file slice just ends at EOF when the file shrank, which a
 * compressor would close with a valid trailer; this one errors instead, so the response is
 * cut. It touches Bun's stream only when first read, so a response whose `body` was merely
 * looked at still goes out with sendfile.
 */
class FileSliceResponse extends Response {
  #length: number;
  #body: ReadableStream<Uint8Array<ArrayBuffer>> | undefined;

  constructor(slice: Blob, init: ResponseInit) {
    super(slice, init);
    this.#length = slice.size;
  }

  override get body(): ReadableStream<Uint8Array<ArrayBuffer>> {
    if (this.#body !== undefined) return this.#body;
    const nativeBody = () => super.body!;
    const length = this.#length;
    let reader: ReadableStreamDefaultReader<Uint8Array<ArrayBuffer>> | undefined;
    let seen = 0;
    return this.#body = new ReadableStream<Uint8Array<ArrayBuffer>>({
      async pull(controller) {
        reader ??= nativeBody().getReader();
        const { done, value } = await reader.read();
        if (!done) {
          seen += value.byteLength;
          controller.enqueue(value);
        } else if (seen < length) {
          controller.error(new Error(`the file ended ${length - seen} bytes early (it changed while being sent)`));
        } else controller.close();
      },
      cancel: (reason) => reader?.cancel(reason),
    }, { highWaterMark: 0 });
  }
}

/**
 * Files up to this size are read whole from their descriptor, so that the bytes sent are the
 * ones their size and time describe; larger ones go by sendfile(2), by path. Above it bytes
 * are slower than sendfile: Bun writes a response of more than about 16 KiB made after an
 * await (here, the read) one header piece per system call (runtime notes).
 */
const READ_WHOLE_MAX_BYTES = 12 * 1024;

// Linux's values (the same on x86-64 and arm64). O_NONBLOCK: a FIFO put there must not
// block the event loop in open(2); its fstat then refuses it as not a regular file.
const O_RDONLY = 0;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const encoder = new TextEncoder();

/**
 * The file at `path`, to send. sluice opens it and takes its size and time from that
 * descriptor (fstat). One of at most READ_WHOLE_MAX_BYTES is read whole from it: a file
 * renamed over the path meanwhile (an rsync, an atomic deploy of an index.html) cannot mix
 * into it. A larger one's bytes are read by path, when Bun.serve sends them after the
 * headers (it has no way to send an open descriptor), so a file renamed over the path in
 * between goes out cut or stretched to the first one's length (docs/runtime-notes.md).
 * Without libc (macOS) or when open(2) fails, the path's stat stands in. Whenever Bun.serve
 * is to open the path, access(2) is asked first: a file it could not open (unreadable, or
 * gone meanwhile) is refused, where Bun.serve's own failed open would be a 500.
 */
export async function bunOpenFile(path: string, readable: (path: string) => boolean, libc: OpenLibc<BunLibc>): Promise<OpenFile | NoFile> {
  const c = path.includes("\0") ? null : libc();
  const opened = c === null ? undefined : await openByDescriptor(path, c, readable);
  if (opened !== undefined) return opened;
  // Missing, a directory on the way not searchable, unreadable, or no descriptor left.
  // A directory on the way not searchable: denied, as X-Sendfile must tell apart from missing.
  const stat = await Bun.file(path).stat().catch((error: unknown) => (isPermissionDenied(error) ? "permission denied" as const : undefined));
  if (stat === "permission denied") return stat;
  if (!stat?.isFile()) return "not a regular file";
  if (!readable(path)) return "permission denied";
  return sentByPath(path, stat);
}

/** The file at `path` as its descriptor says it is; undefined when open(2) fails. */
async function openByDescriptor(path: string, c: BunLibc, readable: (path: string) => boolean): Promise<OpenFile | NoFile | undefined> {
  const fd = c.open(encoder.encode(`${path}\0`), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    const file = Bun.file(fd);
    const stat = await file.stat(); // fstat: this descriptor's file
    if (!stat.isFile()) return "not a regular file";
    // Bun.serve will open the path again: one gone meanwhile (during the fstat) would be its 500.
    if (stat.size > READ_WHOLE_MAX_BYTES) return readable(path) ? sentByPath(path, stat) : "permission denied";
    const bytes = await file.bytes(); // from offset 0: the descriptor is new
    // A file written in place while read (not renamed over) can differ from its stat: the
    // bytes read are one whole answer, described by their own length.
    return {
      size: bytes.byteLength,
      modifiedMs: stat.mtimeMs,
      response: (start, end, init) => new Response(bytes.subarray(start, end + 1), init),
      close() {}, // nothing is open any more
    };
  } finally {
    c.close(fd);
  }
}

/** A file whose bytes Bun.serve reads by path when it sends them, described by `stat`. */
function sentByPath(path: string, stat: { size: number; mtimeMs: number }): OpenFile {
  return {
    size: stat.size,
    modifiedMs: stat.mtimeMs,
    response: (start, end, init) => bunFileBodyResponse(path, start, end, init),
    close() {}, // nothing is open yet
  };
}

/**
 * Bytes start..end of the file at `path` as a response. The slice is named "/": Bun.serve
 * adds `Content-Disposition: filename="<basename>"` to a named Blob of a type browsers do not
 * render (no disposition-type, against RFC 6266; a non-ASCII name UTF-8-encoded twice), and
 * none when the basename is empty. The name does not change which file is read, nor
 * sendfile(2) (measured on Bun 1.4.5; an empty name falls back to the path).
 */
function bunFileBodyResponse(path: string, start: number, end: number, init: ResponseInit): Response {
  const slice = Bun.file(path).slice(start, end + 1);
  (slice as { name?: string }).name = "/"; // typed read-only; Bun has a setter
  return new FileSliceResponse(slice, init);
}
