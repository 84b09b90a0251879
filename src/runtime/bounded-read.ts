/**
 * @module Reading a whole file with a bound, on both runtimes: a configuration named by
 * mistake (a log file, /dev/zero) must fail with a reason, not fill memory. Regular files are
 * checked by size first; a pipe (`--config <(...)`) is read until the bound; anything else
 * (a terminal, a device) is refused before it is opened.
 */

/** What the adapters learn of a path before reading it. */
export type FileKind = "file" | "pipe" | "directory" | "other";

function readError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** The error for a file past `maxBytes`, with its errno-like code. */
export function tooLarge(maxBytes: number): Error {
  return readError("EFBIG", `it is larger than ${maxBytes} bytes`);
}

/** The error for a path that is neither a regular file nor a pipe; undefined for those two. */
export function unreadableKind(kind: FileKind): Error | undefined {
  if (kind === "directory") return readError("EISDIR", "it is a directory");
  if (kind === "other") return readError("ENOTSUP", "it is neither a regular file nor a pipe");
  return undefined;
}

/** Reads `stream` to its end, or cancels it and throws once it passed `maxBytes`. */
export async function readAtMost(stream: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > maxBytes) {
      await reader.cancel();
      throw tooLarge(maxBytes);
    }
    parts.push(value);
  }
  const bytes = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    bytes.set(part, offset);
    offset += part.length;
  }
  return bytes;
}
