/**
 * @module access(2) over libc: whether sluice may read a file. The Bun adapter asks it before
 * Bun.serve opens a file body by path, which it does only once the headers are promised (a
 * failed open then is a 500); Deno learns it from its open.
 */

import type { OpenLibc } from "./libc.ts";

const R_OK = 4;
const encoder = new TextEncoder();

/**
 * `readable(path)`: false when this process may not open the file for reading (permissions,
 * or it is gone); true when libc is unavailable, and the open decides. access(2) checks the
 * real user and group, which are sluice's own (it is no set-user-ID program).
 */
export function readableOf(lib: OpenLibc): (path: string) => boolean {
  return (path) => {
    const c = lib();
    if (c === null) return true;
    return !path.includes("\0") && c.access(encoder.encode(`${path}\0`), R_OK) === 0;
  };
}
