/**
 * @module The libc functions sd-notify.ts needs, bound with Deno.dlopen (needs --allow-ffi, which
 * -A includes; without it every notify returns false). Deno.dlopen is passed in by deno.ts:
 * this file is also type-checked by tsc, which has no Deno types, and `deno check
 * src/runtime/deno.ts` checks the real Deno.dlopen against `DlOpen` at that call.
 */

import { LIBC_NAMES, type NotifyLibc, type SdNotify, sdNotify } from "./sd-notify.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
} as const;

/** What Deno.dlopen returns for SYMBOLS (usize arguments and isize results are bigints). */
interface DenoLibc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Uint8Array, len: bigint, flags: number, addr: Uint8Array, addrlen: number): number | bigint;
  clock_gettime(clock: number, timespec: BigInt64Array): number;
}

/** The shape of Deno.dlopen this file uses. */
export type DlOpen = (filename: string, symbols: typeof SYMBOLS) => { symbols: DenoLibc };

export function denoNotify(dlopen: DlOpen): SdNotify {
  return sdNotify((): NotifyLibc | null => {
    for (const name of LIBC_NAMES) {
      try {
        const symbols = dlopen(name, SYMBOLS).symbols;
        return {
          socket: (domain, type, protocol) => symbols.socket(domain, type, protocol),
          sendto: (fd, bytes, length, flags, address, addressLength) =>
            Number(symbols.sendto(fd, bytes, BigInt(length), flags, address, addressLength)),
          clockGettime: (clock, timespec) => symbols.clock_gettime(clock, timespec),
        };
      } catch {
        // try the next name
      }
    }
    return null;
  });
}
