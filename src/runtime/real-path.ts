/** @module realpath(3) over libc, shared by both adapters: the canonical path, symlinks resolved. */

import type { OpenLibc } from "./libc.ts";

const PATH_MAX = 4096;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `realPath(path)`: the absolute path with every symlink, "." and ".." resolved; undefined when it does not exist or libc is unavailable. */
export function realPathOf(lib: OpenLibc): (path: string) => string | undefined {
  const resolved = new Uint8Array(PATH_MAX);
  return (path) => {
    const c = lib();
    if (c === null || path.includes("\0")) return undefined;
    const bytes = encoder.encode(`${path}\0`);
    if (!c.realpath(bytes, resolved)) return undefined;
    return decoder.decode(resolved.subarray(0, resolved.indexOf(0)));
  };
}
