/**
 * @module sd_notify on Bun: Bun has no unix-datagram API, so this calls libc through bun:ffi
 * (socket, sendto). It works the same inside the compiled binary. notify-deno.ts makes the
 * same calls through Deno.dlopen; keep the two in step. The socket is opened once and kept
 * for the life of the process (the kernel closes it at exit); a raw fd the runtime does not
 * know about keeps nothing alive.
 * https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */

import { dlopen, FFIType } from "bun:ffi";

// Linux values (x86_64, arm64: the targets sluice ships for Linux).
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000; // the child never inherits the socket
const MSG_DONTWAIT = 0x40; // a full receive queue fails the send instead of blocking the event loop
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): sa_family_t sun_family (2 bytes) + char sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_OFFSET = 2;

// glibc's soname first; musl's dynamic linker answers "libc.so" with itself.
const LIBC_NAMES = ["libc.so.6", "libc.so"];

const SYMBOLS = {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  sendto: {
    args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
    returns: FFIType.i64_fast,
  },
  clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
} as const;

const CLOCK_MONOTONIC = 1;

type Libc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

/** undefined: not opened yet; null: libc cannot be opened here (not Linux), never retried. */
let libc: Libc | null | undefined;
/** The one socket every notification goes out on (unbound, unconnected); -1 until opened. */
let fd = -1;
let lastPath: string | undefined;
let lastAddress: { bytes: Uint8Array; length: number } | null = null;
const encoder = new TextEncoder();

function openLibc(): Libc | null {
  for (const name of LIBC_NAMES) {
    try {
      return dlopen(name, SYMBOLS).symbols;
    } catch {
      // try the next name
    }
  }
  return null;
}

/**
 * struct sockaddr_un for NOTIFY_SOCKET: an absolute path (NUL-terminated, counted in the
 * length), or "@name" in the abstract namespace (a leading NUL byte, not terminated: every
 * byte counted in the length is part of the name). null when it is neither or too long.
 */
function socketAddress(socketPath: string): { bytes: Uint8Array; length: number } | null {
  const abstract = socketPath.startsWith("@");
  if (!abstract && !socketPath.startsWith("/")) return null; // relative paths, vsock:... as sd_notify
  if (socketPath.includes("\0")) return null;
  const name = encoder.encode(abstract ? socketPath.slice(1) : socketPath);
  const pathBytes = abstract ? 1 + name.length : name.length + 1;
  if (name.length === 0 || pathBytes > SOCKADDR_UN_SIZE - SUN_PATH_OFFSET) return null;
  const bytes = new Uint8Array(SOCKADDR_UN_SIZE); // zero-filled: the NUL bytes are already there
  new Uint16Array(bytes.buffer, 0, 1)[0] = AF_UNIX; // host byte order, as the kernel reads it
  bytes.set(name, SUN_PATH_OFFSET + (abstract ? 1 : 0));
  return { bytes, length: SUN_PATH_OFFSET + pathBytes };
}

export function notify(socketPath: string, message: string): boolean {
  try {
    if (message === "" || message.includes("\0")) return false; // systemd ignores both
    if (socketPath !== lastPath) {
      lastPath = socketPath;
      lastAddress = socketAddress(socketPath);
    }
    if (lastAddress === null) return false;
    if (libc === undefined) libc = openLibc();
    if (libc === null) return false;
    if (fd < 0) fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0); // retried next call if it failed
    if (fd < 0) return false;
    const bytes = encoder.encode(message);
    const sent = libc.sendto(fd, bytes, bytes.length, MSG_DONTWAIT | MSG_NOSIGNAL, lastAddress.bytes, lastAddress.length);
    return Number(sent) === bytes.length;
  } catch {
    return false;
  }
}

/** CLOCK_MONOTONIC in microseconds (sd_notify's MONOTONIC_USEC), or undefined when unavailable. */
export function monotonicMicros(): bigint | undefined {
  try {
    if (libc === undefined) libc = openLibc();
    if (libc === null) return undefined;
    const timespec = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux
    if (libc.clock_gettime(CLOCK_MONOTONIC, timespec) !== 0) return undefined;
    return timespec[0]! * 1_000_000n + timespec[1]! / 1000n;
  } catch {
    return undefined;
  }
}
