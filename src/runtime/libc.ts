/**
 * @module The few libc functions sluice calls through FFI, because neither runtime offers them:
 * socket + sendto (sd_notify: Bun has no unix-datagram API, Deno's cannot send to an
 * abstract address), clock_gettime (MONOTONIC_USEC), waitid (reaping orphans as PID 1) and
 * realpath (confining served files to their directories; Bun has no API for it) and access
 * (whether a file Bun.serve will open can be read, before its headers are promised).
 * libc-bun.ts and libc-deno.ts bind them; sd-notify.ts and orphans.ts use them on both.
 * libc-bun.ts adds open and close (Bun has no API for a file descriptor), execve and
 * sigprocmask (Bun cannot start its own process over: allocator-bun.ts).
 */

/** glibc's soname first; musl's dynamic linker answers "libc.so" with itself. */
export const LIBC_NAMES = ["libc.so.6", "libc.so"];

/** The libc functions, bound by an adapter (numbers in, numbers out). */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, bytes: Uint8Array, length: number, flags: number, address: Uint8Array, addressLength: number): number;
  clockGettime(clock: number, timespec: BigInt64Array): number;
  /** waitid(idtype, id, siginfo_t *info, options); `info` is a 128-byte siginfo_t. */
  waitid(idType: number, id: number, info: Int32Array, options: number): number;
  /** realpath(path, resolved): `path` NUL-terminated, `resolved` PATH_MAX bytes; false on error. */
  realpath(path: Uint8Array, resolved: Uint8Array): boolean;
  /** access(path, mode): `path` NUL-terminated; 0 when allowed, -1 otherwise. */
  access(path: Uint8Array, mode: number): number;
}

/** libc, opened on first use; null when it cannot be opened here. */
export type OpenLibc<L extends Libc = Libc> = () => L | null;

/** Opens libc once, on first use, with the first of LIBC_NAMES that `bind` can open; a null is never retried. */
export function libcOnFirstUse<L extends Libc>(bind: (name: string) => L): OpenLibc<L> {
  let libc: L | null | undefined;
  return () => {
    if (libc !== undefined) return libc;
    libc = null;
    for (const name of LIBC_NAMES) {
      try {
        return (libc = bind(name));
      } catch {
        // try the next name
      }
    }
    return libc;
  };
}
