/** @module A file's bytes as a Bun response: sent with sendfile(2), read as a stream that notices a short file. */

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
 * The file at `path`, to send: its stat by path, once access(2) says it may be read (Bun.serve
 * opens the Blob only after the headers are promised, and a refused open then is a 500).
 * The bytes are read by path too, when Bun.serve sends them: a file renamed over the path
 * in between goes out cut to the first one's length (docs/runtime-notes.md).
 */
export async function bunOpenFile(path: string, readable: (path: string) => boolean): Promise<OpenFile | NoFile> {
  let stat;
  try {
    stat = await Bun.file(path).stat();
  } catch {
    return "not a regular file"; // missing, or a directory on the way is not searchable
  }
  if (!stat.isFile()) return "not a regular file";
  if (!readable(path)) return "permission denied";
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
