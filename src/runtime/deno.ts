/** @module The Deno adapter: fills the Runtime interface with Deno.*. */

import type {
  ChildProcess,
  ChildSignal,
  ContentEncoding,
  ExitStatus,
  FileStat,
  HttpServerLimits,
  NoFile,
  OpenFile,
  Runtime,
} from "./types.ts";
import { isPermissionDenied, readErrorCode } from "../read-errors.ts";
import { readAtMost, tooLarge, unreadableKind } from "./bounded-read.ts";
import { denoLibc } from "./libc-deno.ts";
import { orphanReaper } from "./orphans.ts";
import { groupListeningAddresses, type ProcReader } from "./listening-sockets.ts";
import { liveProcessInGroup } from "./process-group.ts";
import { realPathOf } from "./real-path.ts";
import { sdNotify } from "./sd-notify.ts";
import { sameObject } from "./shared-output.ts";
import { IGNORED_SIGNALS, signalNumber } from "./signals.ts";
import { denoConnectTcp } from "./socket-deno.ts";
import { denoServe } from "./listener-deno.ts";
import { refuseUnrunnable } from "./unrunnable-deno.ts";

/** Children spawned here whose exit Deno has not yet reported: never reaped as orphans. */
const ownChildren = new Set<number>();

/**
 * Deno's own HTTP limits (measured on 2.9.6): heads over about 64 KiB or with more than 128
 * header lines get a 400 from Deno itself. Deno.serve has no idle or header timeout and no
 * handle on a connection; serving each accepted connection with Deno's internal
 * serveHttpOnConnection would add them, but closes upgraded WebSockets at once (runtime notes).
 */
const httpLimits: HttpServerLimits = {
  maxHeaderBytes: 64 * 1024,
  maxHeaderCount: 128,
  connectionTimeouts: false,
  maxIdleTimeoutMs: undefined,
  fixedHeaderTimeoutMs: undefined,
};

function countHeaders(headers: Headers): number {
  let count = 0;
  for (const _ of headers.keys()) count++;
  return count;
}

function spawn(command: readonly string[], { env, cwd }: { env: Record<string, string>; cwd?: string }): ChildProcess {
  const [program = "", ...args] = command;
  refuseUnrunnable(program, env, cwd);
  const child = new Deno.Command(program, {
    args,
    env,
    clearEnv: true,
    ...(cwd === undefined ? {} : { cwd }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true, // setsid: the child leads its own process group
  }).spawn();
  ownChildren.add(child.pid);
  const exited: Promise<ExitStatus> = child.status.then(({ code, signal }) => {
    ownChildren.delete(child.pid);
    return { code: signal ? 128 + signalNumber(signal) : code, signal: signal ?? null };
  });
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    killGroup(signal: ChildSignal): boolean {
      try {
        Deno.kill(-child.pid, signal);
        return true;
      } catch {
        return false; // ESRCH: no process of the group remains.
      }
    },
    async groupAlive(): Promise<boolean> {
      try {
        // Signal 0 checks without signalling; Deno.kill takes it, though its type names only signals.
        Deno.kill(-child.pid, 0 as unknown as Deno.Signal);
      } catch {
        return false;
      }
      // kill() also counts a zombie of the group that init has not collected yet.
      return (await liveProcessInGroup(child.pid, () => Array.from(Deno.readDirSync("/proc"), (entry) => entry.name), readProcStat)) ?? true;
    },
    listeningAddresses: () => groupListeningAddresses(child.pid, PROC),
  };
}

/** /proc as groupListeningAddresses reads it. */
const PROC: ProcReader = {
  list: () => Array.from(Deno.readDirSync("/proc"), (entry) => entry.name),
  async readText(path) {
    try {
      return await Deno.readTextFile(path);
    } catch {
      return undefined;
    }
  },
  listDir: (path) => Array.from(Deno.readDirSync(path), (entry) => entry.name),
  async socketInode(path) {
    try {
      const stat = await Deno.stat(path);
      return stat.isSocket && stat.ino !== null ? String(stat.ino) : undefined;
    } catch {
      return undefined;
    }
  },
};

async function readProcStat(pid: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return undefined; // exited meanwhile
  }
}

async function probeTcp(hostname: string, port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname, port })).close();
    return true;
  } catch {
    return false;
  }
}

function freePort(hostname: string): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function statFile(path: string): Promise<FileStat | undefined> {
  try {
    const stat = await Deno.stat(path);
    return stat.isFile ? { size: stat.size, modifiedMs: stat.mtime?.getTime() ?? 0, ...(stat.mode === null ? {} : { mode: stat.mode }) } : undefined;
  } catch {
    return undefined; // missing or unreadable
  }
}

/**
 * The regular file at `path`, opened: its size and time are the open file's (fstat), so they
 * describe the bytes sent even if another file is renamed over the path meanwhile. Checked
 * by path first: opening a FIFO would wait for a writer.
 */
async function openFile(path: string): Promise<OpenFile | NoFile> {
  try {
    if (!(await Deno.stat(path)).isFile) return "not a regular file";
  } catch (error) {
    // A directory on the way not searchable: denied, as X-Sendfile must tell apart from missing.
    return isPermissionDenied(error) ? "permission denied" : "not a regular file";
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    // Gone or locked since the stat: as if the stat had found it so.
    const code = readErrorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR") return "not a regular file";
    if (isPermissionDenied(error)) return "permission denied";
    throw error;
  }
  try {
    const stat = await file.stat();
    if (!stat.isFile) {
      file.close();
      return "not a regular file";
    }
    return {
      size: stat.size,
      modifiedMs: stat.mtime?.getTime() ?? 0,
      response: (start, end, init) => new Response(fileStream(file, path, start, end), init),
      close: () => file.close(),
    };
  } catch (error) {
    file.close();
    throw error;
  }
}

/**
 * Bytes start..end of the open `file` as a stream; the file closes at the end, on cancel, or
 * on error (one when the file ends early: it shrank while being sent). Closed once: the last
 * part read closes it, and Deno.serve still cancels the body when the client goes before
 * that part is sent; a second close would throw BadResource into the cancel, which Deno.serve
 * reports as a failed response.
 */
function fileStream(file: Deno.FsFile, path: string, start: number, end: number): ReadableStream<Uint8Array> {
  let remaining = end - start + 1;
  let positioned = false;
  let open = true;
  const close = (): void => {
    if (open) file.close();
    open = false;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (!positioned) {
          await file.seek(start, Deno.SeekMode.Start);
          positioned = true;
        }
        const chunk = new Uint8Array(Math.min(remaining, 64 * 1024));
        const read = await file.read(chunk);
        if (read === null) throw new Error(`${path} ended ${remaining} bytes early (it changed while being sent)`);
        remaining -= read;
        controller.enqueue(chunk.subarray(0, read));
        if (remaining === 0) {
          close();
          controller.close();
        }
      } catch (error) {
        close();
        controller.error(error);
      }
    },
    cancel: close,
  });
}

async function writeAll(fd: 1 | 2, bytes: Uint8Array): Promise<void> {
  const stream = fd === 1 ? Deno.stdout : Deno.stderr;
  for (let offset = 0; offset < bytes.length;) offset += await stream.write(bytes.subarray(offset));
}

function sourceCommit(): string | undefined {
  try {
    const { success, stdout } = new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("../..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return success ? new TextDecoder().decode(stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Deno's CompressionStream flushes after every chunk (measured on Deno 2.9.6, see
 * docs/runtime-notes.md), so it serves as is. It knows "brotli" (not "br") and no zstd.
 */
function compressionStream(encoding: ContentEncoding): ReadableWritablePair<Uint8Array, Uint8Array> {
  if (encoding === "zstd") throw new RangeError("Cannot compress with zstd on Deno: available are br, gzip");
  const { readable, writable } = new CompressionStream(encoding === "br" ? ("brotli" as CompressionFormat) : "gzip");
  return { readable, writable: writable as WritableStream<Uint8Array> };
}

const libc = denoLibc((filename, symbols) => Deno.dlopen(filename, symbols));

export const denoRuntime: Runtime = {
  name: "deno",
  pid: Deno.pid,
  fastBodyPassthrough: false,
  ignorableSignals: IGNORED_SIGNALS,
  version: Deno.version.deno,
  args: Deno.args,
  env: () => Deno.env.toObject(),
  tuneProcess: () => Promise.resolve(), // nothing to tune: Deno's allocator is the system's
  releaseSignals: () => {}, // nothing held: no start-over
  serve: denoServe,
  httpLimits,
  countHeaders,
  // A client that disconnects midway through its body fails the read with BadResource and
  // leaves request.signal unaborted; a body whose framing breaks fails with a plain Error.
  isClientDisconnect: (error) => error instanceof Deno.errors.BadResource,
  spawn,
  probeTcp,
  freePort,
  connectTcp: denoConnectTcp,
  readTextFile: (path) => Deno.readTextFile(path),
  async readFile(path, maxBytes) {
    const stat = await Deno.stat(path);
    const kind = stat.isFile ? "file" : stat.isFifo ? "pipe" : stat.isDirectory ? "directory" : "other";
    const refused = unreadableKind(kind);
    if (refused) throw refused;
    if (kind === "file" && stat.size > maxBytes) throw tooLarge(maxBytes);
    return { bytes: await readAtMost((await Deno.open(path)).readable, maxBytes), pipe: kind === "pipe" };
  },
  statFile,
  openFile,
  onSignal(signal, listener) {
    Deno.addSignalListener(signal, listener);
    return () => Deno.removeSignalListener(signal, listener);
  },
  write: writeAll,
  async outputsShared() {
    try {
      const [one, two] = await Promise.all([1, 2].map((fd) => Deno.readTextFile(`/proc/self/fdinfo/${fd}`)));
      return sameObject(one!, two!);
    } catch {
      return false; // no /proc: taken as separate
    }
  },
  exit: (code) => Deno.exit(code),
  sourceCommit,
  ...sdNotify(libc),
  reapOrphans: orphanReaper(libc, (pid) => ownChildren.has(pid)),
  realPath: realPathOf(libc),
  compressionEncodings: ["br", "gzip"],
  compressionStream,
};
