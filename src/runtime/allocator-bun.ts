/**
 * @module Bun's allocator, tuned for serving. mimalloc (Bun's malloc) returns memory freed for
 * 100 ms to the kernel (Bun 1.4.5's purge delay); a proxy's per-request allocations free and
 * take back the same pages at about that pace, so under load a thread of Bun's spent its time
 * purging pages (madvise) that the next requests faulted back in. MIMALLOC_PURGE_DELAY=1000,
 * upstream mimalloc's own default, cut sluice's CPU time per proxied request by 4-8%
 * (docs/runtime-notes.md). mimalloc reads it once, as the process starts, so sluice starts
 * itself over to set it: execve of its own executable, with the same PID, the same arguments
 * and the same environment plus the variable, before anything else happens. A delay the user
 * set is left alone, and where execve is not possible sluice runs as it was started.
 *
 * The signals that stop or reload sluice are held back (blocked) across the execve: a blocked
 * signal stays pending through it, so one sent while the new image loads waits for main.ts's
 * handlers instead of being dropped (as PID 1, a signal without a handler is) or ending sluice.
 *
 * The descriptors sluice inherits are close-on-exec by the time of the execve, which closed
 * them: the one a --config path names (`--config <(envsubst < sluice.toml.in)` is /dev/fd/63)
 * is kept open across it, else the new image found "no such file" (or, for a low number, a
 * descriptor of Bun's own). The child does not get it: Bun.spawn passes it only its stdio.
 */

import type { OpenLibc } from "./libc.ts";
import type { BunLibc } from "./libc-bun.ts";
import { signalNumber } from "./signals.ts";

const PURGE_DELAY = "MIMALLOC_PURGE_DELAY";
const TUNED_PURGE_DELAY = "1000";
/**
 * Set beside the delay when sluice set it: the delay is not the user's, so the child does not
 * inherit it, and it tells the new process that it was already started over.
 */
const SET_BY_SLUICE = "_SLUICE_SET_PURGE_DELAY";

/**
 * Held back across the start-over. Not SIGUSR2 (a rolling restart is not kept for later
 * anyway) nor the ignored ones: only what a user expects to act even on a starting sluice.
 */
const HELD_SIGNALS = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM"];
/** HELD_SIGNALS as a sigset_t (128 bytes, as glibc and musl define it): bit n-1 for signal n. */
const HELD_SET = new BigUint64Array(16);
for (const name of HELD_SIGNALS) HELD_SET[0]! |= 1n << BigInt(signalNumber(name) - 1);
const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** The environment as the user gave it: without what sluice's start-over added. */
export function environmentAsGiven(env: Record<string, string>): Record<string, string> {
  if (env[SET_BY_SLUICE] === undefined) return env;
  const { [SET_BY_SLUICE]: _marker, [PURGE_DELAY]: _delay, ...given } = env;
  return given;
}

/**
 * Starts this process over with mimalloc's purge delay raised (execve: same PID, same
 * arguments), once. Returns only when it does not: already done, a delay set by the user, or
 * no libc or /proc here, or execve failed (then sluice runs untuned, as before).
 */
export async function startOverTuned(env: Record<string, string>, libc: OpenLibc<BunLibc>): Promise<void> {
  if (env[SET_BY_SLUICE] !== undefined || env[PURGE_DELAY] !== undefined) return;
  const bound = libc();
  if (bound === null) return;
  let args: Uint8Array[];
  let given: Uint8Array[];
  try {
    // The bytes themselves, not decoded strings: an argument or variable need not be UTF-8.
    args = nulTerminated(await Bun.file("/proc/self/cmdline").bytes());
    given = nulTerminated(await Bun.file("/proc/self/environ").bytes());
  } catch {
    return; // no /proc
  }
  if (args.length === 0) return;
  const encoder = new TextEncoder();
  const kept = configDescriptors(args.slice(1).map((arg) => new TextDecoder().decode(arg.subarray(0, -1))), env.SLUICE_CONFIG);
  const added = [`${PURGE_DELAY}=${TUNED_PURGE_DELAY}\0`, `${SET_BY_SLUICE}=1\0`].map((entry) => encoder.encode(entry));
  // The mask is the thread's, and execve keeps it: the new image starts with them blocked.
  // Until execve, another thread of Bun's may still take one (and drop it as PID 1).
  bound.sigprocmask(SIG_BLOCK, HELD_SET);
  for (const fd of kept) bound.fcntl(fd, F_SETFD, 0);
  // /proc/self/exe: this very executable, even when its path was replaced since it started.
  bound.execve(encoder.encode("/proc/self/exe\0"), args, [...given, ...added]);
  // execve failed: run on as started (a child spawned later must not inherit the descriptor).
  for (const fd of kept) bound.fcntl(fd, F_SETFD, FD_CLOEXEC);
  bound.sigprocmask(SIG_UNBLOCK, HELD_SET);
}

/**
 * The descriptors that --config (up to `--`) or SLUICE_CONFIG name as a path: /dev/fd/N,
 * /proc/self/fd/N or /proc/<this pid>/fd/N, as a shell's `<(...)` gives them. Only the
 * descriptor is looked at here, not whether the option is valid: main.ts judges that.
 */
export function configDescriptors(args: readonly string[], variable: string | undefined): number[] {
  const paths = variable === undefined ? [] : [variable];
  for (let i = 0; i < args.length && args[i] !== "--"; i++) {
    if (args[i] === "--config" && i + 1 < args.length) paths.push(args[++i]!);
    else if (args[i]!.startsWith("--config=")) paths.push(args[i]!.slice("--config=".length));
  }
  const named = new RegExp(`^/(?:dev|proc/(?:self|${process.pid}))/fd/(\\d{1,9})$`);
  return [...new Set(paths.flatMap((path) => {
    const fd = named.exec(path)?.[1];
    return fd === undefined || Number(fd) < 3 ? [] : [Number(fd)];
  }))];
}

/**
 * Delivers what the start-over held back, and every such signal from now on: called once
 * their handlers are installed, and before a child is spawned (it would inherit the mask).
 * Does nothing in a process that was not started over.
 */
export function releaseHeldSignals(env: Record<string, string>, libc: OpenLibc<BunLibc>): void {
  if (env[SET_BY_SLUICE] === undefined) return;
  libc()?.sigprocmask(SIG_UNBLOCK, HELD_SET);
}

/** The NUL-terminated strings in `bytes`, each a view that includes its NUL. */
function nulTerminated(bytes: Uint8Array): Uint8Array[] {
  const strings: Uint8Array[] = [];
  for (let start = 0; start < bytes.length;) {
    const end = bytes.indexOf(0, start);
    if (end === -1) break; // cut off: not a whole string
    strings.push(bytes.subarray(start, end + 1));
    start = end + 1;
  }
  return strings;
}
