/** @module libc.ts's functions bound with bun:ffi (works in the compiled binary too). */

import { dlopen, FFIType, ptr } from "bun:ffi";
import { type Libc, libcOnFirstUse } from "./libc.ts";

const SYMBOLS = {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  sendto: {
    args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
    returns: FFIType.i64_fast,
  },
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  waitid: { args: [FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  realpath: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
  access: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  open: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  sigprocmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
} as const;

/**
 * Bun's libc: Libc, a file descriptor of its own (Bun has no API to open one), and execve,
 * sigprocmask and fcntl (Bun has no API to start its own process over, nor to keep signals
 * pending or a descriptor open across it: allocator-bun.ts).
 */
export interface BunLibc extends Libc {
  /** open(path, flags): `path` NUL-terminated; the descriptor, or -1. */
  open(path: Uint8Array, flags: number): number;
  close(fd: number): number;
  /** execve(path, argv, envp), each string NUL-terminated; returns (-1) only when it failed. */
  execve(path: Uint8Array, args: readonly Uint8Array[], env: readonly Uint8Array[]): number;
  /** sigprocmask(how, set, NULL) for the calling thread; `set` is a 128-byte sigset_t. 0, or -1. */
  sigprocmask(how: number, set: BigUint64Array): number;
  /** fcntl(fd, cmd, arg) with an int argument (F_SETFD); -1 when it failed. */
  fcntl(fd: number, cmd: number, arg: number): number;
}

/** A NULL-terminated array of pointers to `strings`, for as long as they are referenced. */
function pointers(strings: readonly Uint8Array[]): BigUint64Array {
  const list = new BigUint64Array(strings.length + 1);
  strings.forEach((string, i) => (list[i] = BigInt(ptr(string))));
  return list;
}

export const libc = libcOnFirstUse<BunLibc>((name) => {
  const { symbols } = dlopen(name, SYMBOLS);
  return {
    socket: (domain, type, protocol) => symbols.socket(domain, type, protocol),
    sendto: (fd, bytes, length, flags, address, addressLength) =>
      Number(symbols.sendto(fd, bytes, length, flags, address, addressLength)),
    clockGettime: (clock, timespec) => symbols.clock_gettime(clock, timespec),
    waitid: (idType, id, info, options) => symbols.waitid(idType, id, info, options),
    realpath: (path, resolved) => symbols.realpath(path, resolved) !== null,
    access: (path, mode) => symbols.access(path, mode),
    open: (path, flags) => symbols.open(path, flags),
    close: (fd) => symbols.close(fd),
    execve: (path, args, env) => symbols.execve(path, pointers(args), pointers(env)),
    sigprocmask: (how, set) => symbols.sigprocmask(how, set, null),
    fcntl: (fd, cmd, arg) => symbols.fcntl(fd, cmd, arg),
  };
});
