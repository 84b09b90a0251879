/**
 * @module libc.ts's functions bound with Deno.dlopen (needs --allow-ffi, which -A includes;
 * without it libc is null: notify returns false and no orphan is reaped). Deno.dlopen is
 * passed in by deno.ts: this file is also type-checked by tsc, which has no Deno types, and
 * `deno check src/runtime/deno.ts` checks the real Deno.dlopen against `DlOpen` at that call.
 */

import { libcOnFirstUse, type OpenLibc } from "./libc.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  waitid: { parameters: ["i32", "i32", "buffer", "i32"], result: "i32" },
  realpath: { parameters: ["buffer", "buffer"], result: "pointer" },
  access: { parameters: ["buffer", "i32"], result: "i32" },
} as const;

/** What Deno.dlopen returns for SYMBOLS (usize arguments and isize results are bigints). */
interface DenoLibc {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Uint8Array, len: bigint, flags: number, addr: Uint8Array, addrlen: number): number | bigint;
  clock_gettime(clock: number, timespec: BigInt64Array): number;
  waitid(idType: number, id: number, info: Int32Array, options: number): number;
  realpath(path: Uint8Array, resolved: Uint8Array): unknown;
  access(path: Uint8Array, mode: number): number;
}

/** The shape of Deno.dlopen this file uses. */
export type DlOpen = (filename: string, symbols: typeof SYMBOLS) => { symbols: DenoLibc };

export function denoLibc(dlopen: DlOpen): OpenLibc {
  return libcOnFirstUse((name) => {
    const symbols = dlopen(name, SYMBOLS).symbols;
    return {
      socket: (domain, type, protocol) => symbols.socket(domain, type, protocol),
      sendto: (fd, bytes, length, flags, address, addressLength) =>
        Number(symbols.sendto(fd, bytes, BigInt(length), flags, address, addressLength)),
      clockGettime: (clock, timespec) => symbols.clock_gettime(clock, timespec),
      waitid: (idType, id, info, options) => symbols.waitid(idType, id, info, options),
      realpath: (path, resolved) => symbols.realpath(path, resolved) !== null,
      access: (path, mode) => symbols.access(path, mode),
    };
  });
}
