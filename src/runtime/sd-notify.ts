/**
 * @module sd_notify over libc (socket + sendto, and clock_gettime for MONOTONIC_USEC), shared
 * by both adapters; libc-bun.ts and libc-deno.ts only bind the functions. The socket is opened
 * once and kept for the life of the process (the kernel closes it at exit); a raw fd the
 * runtime does not know about keeps nothing alive.
 * https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */

import type { OpenLibc } from "./libc.ts";

// Linux values (x86_64, arm64: the targets sluice ships for Linux).
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000; // the child never inherits the socket
const MSG_DONTWAIT = 0x40; // a full receive queue fails the send instead of blocking the event loop
const MSG_NOSIGNAL = 0x4000;
const CLOCK_MONOTONIC = 1;
/** sizeof(struct sockaddr_un): sa_family_t sun_family (2 bytes) + char sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;
const SUN_PATH_OFFSET = 2;

export interface SdNotify {
  notify(socketPath: string, message: string): boolean;
  monotonicMicros(): bigint | undefined;
}

const encoder = new TextEncoder();

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

export function sdNotify(lib: OpenLibc): SdNotify {
  let fd = -1;
  let lastPath: string | undefined;
  let lastAddress: { bytes: Uint8Array; length: number } | null = null;

  function notify(socketPath: string, message: string): boolean {
    try {
      if (message === "" || message.includes("\0")) return false; // systemd ignores both
      if (socketPath !== lastPath) {
        lastPath = socketPath;
        lastAddress = socketAddress(socketPath);
      }
      const c = lib();
      if (lastAddress === null || c === null) return false;
      if (fd < 0) fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0); // retried next call if it failed
      if (fd < 0) return false;
      const bytes = encoder.encode(message);
      return c.sendto(fd, bytes, bytes.length, MSG_DONTWAIT | MSG_NOSIGNAL, lastAddress.bytes, lastAddress.length) === bytes.length;
    } catch {
      return false;
    }
  }

  function monotonicMicros(): bigint | undefined {
    try {
      const c = lib();
      if (c === null) return undefined;
      const timespec = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec; } on 64-bit Linux
      if (c.clockGettime(CLOCK_MONOTONIC, timespec) !== 0) return undefined;
      return timespec[0]! * 1_000_000n + timespec[1]! / 1000n;
    } catch {
      return undefined;
    }
  }

  return { notify, monotonicMicros };
}
