/**
 * @module Reaping orphans, shared by both adapters. As a container's PID 1, sluice inherits
 * every process whose parent exits (the app's orphaned grandchildren); neither runtime
 * collects those, so each would stay a zombie, holding a PID, until the container ends.
 * A blind waitpid(-1) would also collect the runtime's own children and steal the exit
 * status the supervisor waits for, so this peeks first: waitid(P_ALL, WNOWAIT) names the
 * next exited child without collecting it, and only one the runtime did not spawn is then
 * collected by its PID.
 */

import type { OpenLibc } from "./libc.ts";

// Linux values (x86_64, arm64).
const P_ALL = 0;
const P_PID = 1;
const WNOHANG = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
/** siginfo_t is 128 bytes; si_pid is the int at byte 16 on 64-bit Linux. */
const SIGINFO_INTS = 32;
const SI_PID_INDEX = 4;

export interface ReapResult {
  /** Orphans collected by this call. */
  reaped: number;
  /**
   * True when the next exited child is one of the runtime's own, not yet collected by it:
   * orphans queued behind it wait, so call again shortly.
   */
  blocked: boolean;
}

/** `isOwn(pid)` is true for every child the runtime spawned whose exit it has not yet reported. */
export function orphanReaper(lib: OpenLibc, isOwn: (pid: number) => boolean): () => ReapResult {
  const info = new Int32Array(SIGINFO_INTS);
  return () => {
    const c = lib();
    let reaped = 0;
    if (c === null) return { reaped, blocked: false };
    for (;;) {
      info.fill(0); // with WNOHANG and nothing exited, waitid returns 0 and leaves si_pid 0
      if (c.waitid(P_ALL, 0, info, WEXITED | WNOHANG | WNOWAIT) !== 0) return { reaped, blocked: false }; // ECHILD: no children
      const pid = info[SI_PID_INDEX]!;
      if (pid === 0) return { reaped, blocked: false };
      if (isOwn(pid)) return { reaped, blocked: true };
      if (c.waitid(P_PID, pid, info, WEXITED | WNOHANG) !== 0) return { reaped, blocked: false };
      reaped++;
    }
  };
}
