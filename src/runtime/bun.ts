/** @module The Bun adapter: fills the Runtime interface with Bun.* and Bun's process global. */

import type { ChildProcess, ChildSignal, ExitStatus, HttpListener, HttpServerLimits, Runtime, ServeOptions } from "./types.ts";
import { environmentAsGiven, releaseHeldSignals, startOverTuned } from "./allocator-bun.ts";
import { readAtMost, tooLarge, unreadableKind } from "./bounded-read.ts";
import { bunCompression } from "./compression-bun.ts";
import { bunOpenFile } from "./file-body-bun.ts";
import { libc } from "./libc-bun.ts";
import { orphanReaper } from "./orphans.ts";
import { groupListeningAddresses, type ProcReader } from "./listening-sockets.ts";
import { liveProcessInGroup } from "./process-group.ts";
import { readableOf } from "./readable.ts";
import { realPathOf } from "./real-path.ts";
import { sdNotify } from "./sd-notify.ts";
import { sameObject } from "./shared-output.ts";
import { plainServerError } from "./server-error.ts";
import { editAnswer, withHeader } from "./answer-headers.ts";
import { signalNumber } from "./signals.ts";
import { bunConnectTcp } from "./socket-bun.ts";
import { bunUpgradeWebSocket, bunWebSocketHandler } from "./websocket-bun.ts";

// The environment as sluice was given it, for the child and for configuration: what
// sluice's own start-over added (allocator-bun.ts) is its alone.
const startEnv = { ...process.env } as Record<string, string>;
const initialEnv = environmentAsGiven(startEnv);
for (const name in startEnv) if (!(name in initialEnv)) delete process.env[name];
// Bun's fetch sends even loopback requests through HTTP_PROXY/ALL_PROXY (a proxy meant for
// the app would swallow a local collector's trace exports); it reads NO_PROXY at call time.
process.env.NO_PROXY = process.env.no_proxy = [process.env.NO_PROXY ?? process.env.no_proxy, "127.0.0.1", "localhost", "::1", "[::1]"]
  .filter(Boolean)
  .join(",");

// `await Bun.write(Bun.stdout, ...)` on a full pipe blocks the whole event loop; a
// FileSink's write + flush does not.
let stdoutSink: ReturnType<typeof Bun.stdout.writer> | undefined;
let stderrSink: ReturnType<typeof Bun.stderr.writer> | undefined;

/** Children spawned here whose exit Bun has not yet reported: never reaped as orphans. */
const ownChildren = new Set<number>();

/** access(2) R_OK, for files Bun.serve will open only once their headers are promised. */
const readable = readableOf(libc);

const dated = (response: Response): Response => (response.headers.has("date") ? response : withHeader(response, "date", new Date().toUTCString()));

/** How often a closed listener checks whether anything is still pending (only during a stop). */
const PENDING_POLL_MS = 10;

/** Bun's idle timer fires on 4 s ticks: it may cut a connection up to this much before its timeout. */
const IDLE_TICK_MS = 4000;

function serve({ hostname, port, handler, onError, idleTimeoutMs = 0 }: ServeOptions): Promise<HttpListener> {
  // Bun's idle timer runs from the last bytes read, in 4 s ticks, and cuts a request in
  // flight too (a slow upstream, a streamed response, a long upload). A request is safe for
  // the timeout less a tick after its bytes arrived; one that runs longer is held (the timer
  // suspended) until its response is done. Most requests never need the two calls.
  const idleSeconds = Math.ceil(idleTimeoutMs / 1000);
  const server = Bun.serve({
    websocket: bunWebSocketHandler,
    hostname,
    port,
    idleTimeout: idleSeconds,
    // Bun refuses request bodies over 128 MiB by default with its own 413, before the handler
    // (or, chunked, midway): sluice streams bodies of any size, --max-request-body is the limit.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch(request, server) {
      const answer = handler(request, { remoteAddress: server.requestIP(request)?.address ?? "" });
      // Bun 1.4.5 sends a Date on every answer but a HEAD's (a bare Bun.serve neither), which
      // RFC 9110 section 6.6.1 requires of an origin server and of a proxy forwarding an
      // answer without one.
      return request.method === "HEAD" ? editAnswer(answer, dated) : answer;
    },
    error: onError ?? plainServerError,
  });
  return Promise.resolve({
    port: server.port ?? port,
    async close() {
      // The listening socket closes now. Bun's own promise would also wait for connections
      // that sent part of a request head, until its 10 s header timeout: instead, wait until
      // no request or WebSocket is pending (a response counts until Bun has written its last
      // byte, bodies it sends untouched and files sent with sendfile(2) included), then cut
      // the connections left, which have nothing in flight (docs/runtime-notes.md).
      const stopped = server.stop(false);
      const done = stopped.then(() => true);
      while (server.pendingRequests + server.pendingWebSockets > 0) {
        if (await Promise.race([done, Bun.sleep(PENDING_POLL_MS).then(() => false)])) return;
      }
      void server.stop(true);
      await stopped;
    },
    closeAllConnections() {
      void server.stop(true);
      return true;
    },
    refusing: () => Promise.resolve(), // stop() closed the listening socket at once
    upgradeWebSocket: (request, accept) => bunUpgradeWebSocket(server, request, accept),
    idleTimeoutSafeMs: idleSeconds > 0 ? Math.max(0, idleSeconds * 1000 - IDLE_TICK_MS - 1000) : undefined,
    holdOpen(request) {
      server.timeout(request, 0);
    },
    releaseHold(request) {
      server.timeout(request, idleSeconds);
    },
  });
}

/**
 * Bun's own HTTP limits (measured on 1.4.5): heads over --max-http-header-size (16 KiB
 * unless BUN_OPTIONS or the command line sets it; the first one given wins) and more than
 * 198 header lines get its own 431; idleTimeout is whole seconds up to 255; a request's
 * headers get a fixed 10 s (closed 10-12 s after the connection's first byte).
 */
function httpLimits(): HttpServerLimits {
  const flag = process.execArgv.find((arg) => arg.startsWith("--max-http-header-size"));
  const value = flag?.includes("=") ? flag.slice(flag.indexOf("=") + 1) : process.execArgv[process.execArgv.indexOf(flag ?? "") + 1];
  return {
    maxHeaderBytes: flag && Number(value) > 0 ? Number(value) : 16 * 1024,
    maxHeaderCount: 198,
    connectionTimeouts: true,
    maxIdleTimeoutMs: 255_000,
    fixedHeaderTimeoutMs: 10_000,
  };
}

function spawn(command: readonly string[], { env, cwd }: { env: Record<string, string>; cwd?: string }): ChildProcess {
  const proc = Bun.spawn([...command], {
    env,
    ...(cwd === undefined ? {} : { cwd }),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // setsid: the child leads its own process group, so a terminal's Ctrl-C reaches only
    // sluice, and sluice can signal the child's whole group.
    detached: true,
  });
  ownChildren.add(proc.pid);
  const exited: Promise<ExitStatus> = proc.exited.then(() => {
    ownChildren.delete(proc.pid);
    const signal = proc.signalCode === null ? null : String(proc.signalCode);
    return { code: signal ? 128 + signalNumber(signal) : (proc.exitCode ?? 0), signal };
  });
  return {
    pid: proc.pid,
    stdout: proc.stdout,
    stderr: proc.stderr,
    exited,
    killGroup(signal: ChildSignal): boolean {
      try {
        process.kill(-proc.pid, signal);
        return true;
      } catch {
        return false; // ESRCH: no process of the group remains.
      }
    },
    async groupAlive(): Promise<boolean> {
      try {
        process.kill(-proc.pid, 0);
      } catch {
        return false;
      }
      // kill() also counts a zombie of the group that init has not collected yet.
      return (await liveProcessInGroup(proc.pid, () => PIDS.scanSync({ cwd: "/proc", onlyFiles: false }), readProcStat)) ?? true;
    },
    listeningAddresses: () => groupListeningAddresses(proc.pid, PROC),
  };
}

/** /proc as groupListeningAddresses reads it. */
const PROC: ProcReader = {
  list: () => PIDS.scanSync({ cwd: "/proc", onlyFiles: false }),
  async readText(path) {
    try {
      return await Bun.file(path).text();
    } catch {
      return undefined;
    }
  },
  listDir: (path) => new Bun.Glob("*").scanSync({ cwd: path, onlyFiles: false }),
  async socketInode(path) {
    try {
      const stat = await Bun.file(path).stat();
      return stat.isSocket() ? String(stat.ino) : undefined;
    } catch {
      return undefined;
    }
  },
};

/** The names in /proc that are process ids. */
const PIDS = new Bun.Glob("[0-9]*");

async function readProcStat(pid: string): Promise<string | undefined> {
  try {
    return await Bun.file(`/proc/${pid}/stat`).text();
  } catch {
    return undefined; // exited meanwhile
  }
}

async function probeTcp(hostname: string, port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname, port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

function freePort(hostname: string): number {
  const listener = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

export const bunRuntime: Runtime = {
  name: "bun",
  pid: process.pid,
  fastBodyPassthrough: true,
  // Bun 1.4.5 ignores SIGPWR itself, and never calls a listener for SIGSTKFLT (docs/runtime-notes.md).
  ignorableSignals: ["SIGUSR1", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGIO"],
  version: Bun.version,
  args: process.argv.slice(2),
  env: () => ({ ...initialEnv }),
  tuneProcess: () => startOverTuned(startEnv, libc),
  releaseSignals: () => releaseHeldSignals(startEnv, libc),
  serve,
  httpLimits: httpLimits(),
  // Bun's Headers know their size natively; iterating them would copy them into JS.
  countHeaders: (headers) => (headers as Headers & { count: number }).count,
  // Bun aborts request.signal at once when the client disconnects, whatever was being read.
  isClientDisconnect: () => false,
  spawn,
  probeTcp,
  freePort,
  connectTcp: bunConnectTcp,
  readTextFile: (path) => Bun.file(path).text(),
  async readFile(path, maxBytes) {
    const file = Bun.file(path);
    const stat = await file.stat();
    const kind = stat.isFile() ? "file" : stat.isFIFO() ? "pipe" : stat.isDirectory() ? "directory" : "other";
    const refused = unreadableKind(kind);
    if (refused) throw refused;
    if (kind === "pipe") return { bytes: await readAtMost(file.stream(), maxBytes), pipe: true };
    if (stat.size > maxBytes) throw tooLarge(maxBytes);
    return { bytes: await file.bytes(), pipe: false };
  },
  async statFile(path) {
    try {
      const stat = await Bun.file(path).stat();
      return stat.isFile() ? { size: stat.size, modifiedMs: stat.mtimeMs, mode: stat.mode } : undefined;
    } catch {
      return undefined; // missing or unreadable
    }
  },
  openFile: (path) => bunOpenFile(path, readable, libc),
  onSignal(signal, listener) {
    process.on(signal, listener);
    return () => void process.off(signal, listener);
  },
  async write(fd, bytes) {
    const sink = fd === 1 ? (stdoutSink ??= Bun.stdout.writer()) : (stderrSink ??= Bun.stderr.writer());
    // A write the pipe cannot take at once returns a promise, which rejects on EPIPE (the
    // reader went away): unawaited, Bun printed each rejection with a page of its source.
    await sink.write(bytes);
    await sink.flush();
  },
  async outputsShared() {
    try {
      const [one, two] = await Promise.all([1, 2].map((fd) => Bun.file(`/proc/self/fdinfo/${fd}`).text()));
      return sameObject(one!, two!);
    } catch {
      return false; // no /proc: taken as separate
    }
  },
  exit: (code) => process.exit(code),
  sourceCommit: () => undefined,
  ...sdNotify(libc),
  reapOrphans: orphanReaper(libc, (pid) => ownChildren.has(pid)),
  realPath: realPathOf(libc),
  ...bunCompression(),
};
