/**
 * @module A file's bytes as a Bun response: a small file read whole from one descriptor; a
 * larger one sent with sendfile(2), read as a stream that notices a short file.
 */

import type { Libc, OpenLibc } from "./libc.ts";
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
 * Files up to this size are read whole from one descriptor when opened, so that the bytes
 * sent are the ones their size and time describe; larger ones go by sendfile(2), by path.
 * Above it bytes are slower than sendfile: Bun writes a response of more than about 16 KiB
 * made after an await (here, the read) one header piece per system call (runtime notes).
 */
const READ_WHOLE_MAX_BYTES = 12 * 1024;

// Linux's values (the same on x86-64 and arm64). O_NONBLOCK: a FIFO put there meanwhile
// must not block the event loop in open(2); it is then refused as not a regular file.
const O_RDONLY = 0;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const encoder = new TextEncoder();

/**
 * The file at `path`, to send. A regular file of at most READ_WHOLE_MAX_BYTES is read whole
 * from one open descriptor, its size and time taken from that descriptor (fstat): a file
 * renamed over the path meanwhile (an rsync, an atomic deploy of an index.html) cannot mix
 * into it. A larger one is stat'ed by path, once access(2) says it may be read (Bun.serve
 * opens the Blob only after the headers are promised, and a refused open then is a 500); its
 * bytes are read by path too, when Bun.serve sends them, so a file renamed over the path in
 * between goes out cut or stretched to the first one's length (docs/runtime-notes.md).
 */
export async function bunOpenFile(path: string, readable: (path: string) => boolean, libc: OpenLibc): Promise<OpenFile | NoFile> {
  let stat = await regularFileStat(path);
  if (stat === undefined) return "not a regular file";
  const c = stat.size <= READ_WHOLE_MAX_BYTES && !path.includes("\0") ? libc() : null;
  if (c !== null) {
    const whole = await readWhole(path, c);
    if (whole !== undefined) return whole;
    // open(2) failed (the file is gone or unreadable, or no descriptor is left), or a larger
    // file took its place: as a larger file.
    stat = await regularFileStat(path);
    if (stat === undefined) return "not a regular file";
  }
  if (!readable(path)) return "permission denied";
  return {
    size: stat.size,
    modifiedMs: stat.mtimeMs,
    response: (start, end, init) => bunFileBodyResponse(path, start, end, init),
    close() {}, // nothing is open yet
  };
}

/** The stat of the regular file at `path`; undefined when there is none (missing, a directory, a directory on the way not searchable). */
async function regularFileStat(path: string) {
  const stat = await Bun.file(path).stat().catch(() => undefined);
  return stat?.isFile() ? stat : undefined;
}

/**
 * The file at `path` read whole from one descriptor; undefined when it cannot be opened or
 * is larger than READ_WHOLE_MAX_BYTES.
 */
async function readWhole(path: string, c: Libc): Promise<OpenFile | "not a regular file" | undefined> {
  const fd = c.open(encoder.encode(`${path}\0`), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return undefined;
  try {
    const file = Bun.file(fd);
    const stat = await file.stat(); // fstat: this descriptor's file
    if (!stat.isFile()) return "not a regular file";
    if (stat.size > READ_WHOLE_MAX_BYTES) return undefined;
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
