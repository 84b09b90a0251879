/** @module The Runtime interface: everything sluice needs from Bun or Deno, in one shape. */

import type { ReapResult } from "./orphans.ts";
import type { IgnoredSignal } from "./signals.ts";

/**
 * Signals sluice listens for. The IgnoredSignals only to log and ignore them (their default
 * action ends the process); Deno still opens its inspector on SIGUSR1 (docs/runtime-notes.md).
 */
export type ListenSignal = "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGHUP" | "SIGUSR2" | "SIGCHLD" | IgnoredSignal;

/** Signals sluice may send to its children. */
export type ChildSignal =
  | "SIGTERM"
  | "SIGINT"
  | "SIGQUIT"
  | "SIGHUP"
  | "SIGKILL"
  | "SIGUSR1"
  | "SIGUSR2"
  | "SIGWINCH";

/** Per-request facts the listener knows and the request does not carry. */
export interface ConnectionInfo {
  /** The peer's IP address, or "" when unknown (unix sockets). */
  remoteAddress: string;
}

/** A handler answers with a Response, or with nothing once it has upgraded the request to a WebSocket. */
export type FetchHandler = (request: Request, info: ConnectionInfo) => Response | undefined | Promise<Response | undefined>;

/** A WebSocket message: text as a string, binary as bytes. */
export type WebSocketMessage = string | Uint8Array;

export type ControlFrameSent = "sent" | "full" | "unsupported";

/** The client's side of an accepted WebSocket, as the runtime's server exposes it. */
export interface WebSocketPeer {
  /**
   * Sends one message. False when the runtime's send queue for this client is over its limit:
   * the caller should send no more until `drained` runs (the message itself is queued, never lost).
   */
  send(message: WebSocketMessage): boolean;
  /**
   * Sends a ping or pong frame: "sent"; "full" when the send queue is over its limit, as `send`
   * returning false (wait for `drained`); "unsupported" where the runtime cannot (Deno answers
   * pings itself).
   */
  ping(payload: Uint8Array): ControlFrameSent;
  pong(payload: Uint8Array): ControlFrameSent;
  /** Starts the closing handshake. 1005 sends a Close frame without a code. */
  close(code: number, reason: string): void;
  /** Stops reading the client's messages (TCP backpressure) until `resume`; false where the runtime cannot. */
  pause(): boolean;
  resume(): void;
}

/** What happens on an accepted WebSocket; the runtime calls these. */
export interface WebSocketEvents {
  open(peer: WebSocketPeer): void;
  message(message: WebSocketMessage): void;
  /** A ping or pong from the client, where the runtime reports them (the runtime has already answered a ping). */
  ping(payload: Uint8Array): void;
  pong(payload: Uint8Array): void;
  /** The send queue went back under its limit after a `send` returned false. */
  drained(): void;
  /** The connection closed (1005: the Close frame had no code; 1006: no Close frame). */
  close(code: number, reason: string): void;
}

/** How to accept a WebSocket upgrade: the subprotocol and extra headers of the 101 response, and the events. */
export interface WebSocketAccept {
  protocol: string | undefined;
  headers: Headers;
  events: WebSocketEvents;
}

export interface ServeOptions {
  hostname: string;
  port: number;
  handler: FetchHandler;
  /**
   * Called for errors thrown by `handler` that escaped it, and on Bun for a file body that
   * fails to open once returned. @default plainServerError (no error text to the client)
   */
  onError?: (error: unknown) => Response;
  /**
   * Called when the listening socket failed (Deno: an accept error such as EMFILE ends
   * Deno.serve's loop) or could not be opened again; the adapter listens again `retryInMs`
   * later, and connections already accepted go on.
   */
  onListenerFailed?: (error: unknown, retryInMs: number) => void;
  /** Close a connection without a request in flight after this long (0: never). See HttpServerLimits. */
  idleTimeoutMs?: number;
  /** Close a connection whose first request's headers are not in after this long (0: never). */
  headerTimeoutMs?: number;
}

/** What a runtime's HTTP server enforces by itself, whatever sluice asks (measured: docs/runtime-notes.md). */
export interface HttpServerLimits {
  /** Largest request head (request line and headers) it reads; it refuses larger ones itself. */
  maxHeaderBytes: number;
  /** Most request header lines it reads; it refuses more itself. */
  maxHeaderCount: number;
  /** Whether it can apply idle and header timeouts at all (Deno.serve cannot). */
  connectionTimeouts: boolean;
  /** Longest idle timeout it can apply; undefined when there is no such bound. */
  maxIdleTimeoutMs: number | undefined;
  /** Its own wait for a request's headers when that cannot be changed; undefined when it can. */
  fixedHeaderTimeoutMs: number | undefined;
}

/** A bound HTTP listener. */
export interface HttpListener {
  /** The bound port (useful when 0 was asked for). */
  readonly port: number;
  /**
   * Stops accepting: the listening socket closes (new connections are refused once
   * `refusing()` settles), idle keep-alive connections close, requests in flight continue.
   * Resolves once every response has been sent in full; a connection that sent only part of
   * a request head does not hold it (it is closed then, if not before).
   */
  close(): Promise<void>;
  /**
   * After `close()`: settles once the listening socket is closed, so that new connections are
   * refused. Bun closes it within `close()`; Deno only when its event loop next turns
   * (docs/runtime-notes.md), so what sluice does synchronously after `close()` (signal its
   * child, in a fast stop) would come while the port still accepts.
   */
  refusing(): Promise<void>;
  /**
   * Cuts every connection still open. Call only after the drain deadline. Returns true when it
   * did (Bun): an answer not yet sent is then lost. False where the runtime cannot (Deno):
   * sluice's aborts close those connections, after their answers.
   */
  closeAllConnections(): boolean;
  /**
   * Answers `request` (a valid WebSocket handshake the handler got) with 101 and runs `accept.events`
   * for the connection. Returns what the handler must answer with: undefined on Bun (the upgrade is
   * done), the 101 Response on Deno, or an error Response when the runtime refused the handshake (no
   * event then runs).
   */
  upgradeWebSocket(request: Request, accept: WebSocketAccept): Response | undefined;
  /**
   * How long a request may be in flight before the idle timeout could cut its connection
   * (undefined: never, there is none). Requests still in flight then are held with `holdOpen`.
   */
  readonly idleTimeoutSafeMs: number | undefined;
  /** From now until `releaseHold`, the idle timeout never cuts `request`'s connection. */
  holdOpen(request: Request): void;
  /** The held request's response is complete or handed over: its connection may count as idle again. */
  releaseHold(request: Request): void;
}

export interface ExitStatus {
  /** Exit code, or 128+n when the process was killed by signal n. */
  code: number;
  /** The signal that killed the process, if one did. */
  signal: string | null;
}

export interface SpawnOptions {
  /** The child's whole environment (nothing is inherited implicitly). */
  env: Record<string, string>;
  cwd?: string;
}

export interface ChildProcess {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves once with the exit status; never rejects. */
  readonly exited: Promise<ExitStatus>;
  /** Signals the child's whole process group; false when no process of it remains. */
  killGroup(signal: ChildSignal): boolean;
  /**
   * Whether a process of the child's group remains that has not exited (signal 0, then
   * /proc: an orphan of the group that has exited stays a zombie until init collects it,
   * which an init may do late or never). Without /proc, signal 0 alone.
   */
  groupAlive(): Promise<boolean>;
  /**
   * The TCP addresses (host:port) the child's group listens on, from /proc, sorted; empty
   * without /proc. For the message of a child that is not ready: where it listens instead.
   */
  listeningAddresses(): Promise<string[]>;
}

/**
 * What happens on a TCP connection opened with `Runtime.connectTcp`; the runtime calls these.
 * Callbacks rather than streams: per request, streams cost a promise per read and write.
 */
export interface TcpSocketEvents {
  /** Bytes read; they belong to the receiver (the runtime never reuses the buffer). */
  data(bytes: Uint8Array): void;
  /** Everything `write` queued after returning false has been handed to the kernel. */
  drain(): void;
  /**
   * The connection is over, exactly once: the peer ended it (EOF, no error), it failed, or
   * `destroy()` was called. Nothing is read or written after it.
   */
  close(error?: Error): void;
  /**
   * Optional: the peer ended its side (EOF) and the connection stays open for writing, until
   * `end()` (which then closes it) or `destroy()`. Without it, the peer's EOF is `close`. Under
   * Deno only: Bun's sockets close at the peer's EOF (what was written before it still goes out).
   * (Not named `end`: a receiver may have an `end` of its own, as Http1Connection does, whose
   * EOF was then taken for this and left its request waiting.)
   */
  peerEnded?(): void;
}

/** A TCP connection (no delay), driven by TcpSocketEvents. */
export interface TcpSocket {
  /**
   * Sends bytes, in order; nothing is lost while the connection lives. False when the bytes
   * not yet handed to the kernel are over the adapter's limit: write no more until `drain`.
   */
  write(bytes: Uint8Array): boolean;
  /** Stops reading until `resume()` (backpressure towards the peer). */
  pause(): void;
  resume(): void;
  /** Sends what is queued, then ends the sending side (FIN); `close` follows the peer's end. */
  end(): void;
  /** Closes at once; queued bytes are dropped; `close` follows. */
  destroy(): void;
}

/** A plain TCP connection as two byte streams (WebSockets relay frames over it). */
export interface TcpConnection {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  close(): void;
}

/** Content codings sluice can compress a response body with (RFC 9110 section 8.4.1). */
export type ContentEncoding = "br" | "zstd" | "gzip";

/** A regular file's size and modification time. */
export interface FileStat {
  size: number;
  modifiedMs: number;
  /** Its permission bits (st_mode), where the runtime gives them (statFile). */
  mode?: number;
}

/** Why no file was opened: nothing regular there (missing, a directory ...), or no right to read it. */
export type NoFile = "not a regular file" | "permission denied";

/**
 * A regular file to send, opened: its size and modification time and the bytes sent come from
 * the same file, even when another is renamed over its path meanwhile (on Deno; on Bun for a
 * small file, see openFile). Either `response` is called once, and the response then owns
 * the file, or `close`.
 */
export interface OpenFile extends FileStat {
  /**
   * A response whose body is bytes `start` to `end` (inclusive): on Bun the bytes of a small
   * file, or a Blob slice, which Bun.serve sends with sendfile(2); on Deno a stream that
   * closes the file at its end. Its
   * `body` stream errors if the file ends before `end` (it shrank while being read), so
   * whatever reads it (compression, the cache) cuts the response instead of ending it short
   * and clean.
   */
  response(start: number, end: number, init: ResponseInit): Response;
  /** Closes the file when no response was made of it. */
  close(): void;
}

export interface Runtime {
  readonly name: "bun" | "deno";
  /** This process's PID (1 when sluice is a container's init). */
  readonly pid: number;
  /**
   * True when passing a fetched body through untouched is much faster than observing it
   * in JS, and `closeAllConnections()` can cut such a response. Otherwise every body is
   * observed, so that aborting its exchange cuts it.
   */
  readonly fastBodyPassthrough: boolean;
  /** The IgnoredSignals this runtime lets a program handle (and does not already ignore itself). */
  readonly ignorableSignals: readonly IgnoredSignal[];
  readonly version: string;
  /** Command-line arguments after the program (and script) name. */
  readonly args: readonly string[];
  /** A snapshot of the process environment. */
  env(): Record<string, string>;
  /**
   * Tunes the process for serving before anything else runs. Bun: starts it over once (same
   * PID, same arguments) with its allocator's purge delay raised, so it resolves only when it
   * did not (runtime/allocator-bun.ts).
   */
  tuneProcess(): Promise<void>;
  /**
   * Delivers the stop and reload signals that tuneProcess held back across its start-over
   * (blocked, so pending, not lost): call once their handlers are installed, before any child.
   */
  releaseSignals(): void;
  serve(options: ServeOptions): Promise<HttpListener>;
  readonly httpLimits: HttpServerLimits;
  /** The number of header fields (repeated names merged into one), as cheaply as the runtime allows. */
  countHeaders(headers: Headers): number;
  /**
   * True when `error`, thrown by reading a request's body, means the client's connection is
   * gone, which the request's signal does not always tell (Deno: docs/runtime-notes.md).
   */
  isClientDisconnect(error: unknown): boolean;
  /** Spawns `command` in its own process group (setsid) with piped output. */
  spawn(command: readonly string[], options: SpawnOptions): ChildProcess;
  /** True when a TCP connection to hostname:port succeeds (it is closed at once). */
  probeTcp(hostname: string, port: number): Promise<boolean>;
  /** A port on `hostname` that no socket is bound to now, as the kernel picks one for bind(0); throws when none can be bound. */
  freePort(hostname: string): number;
  /**
   * Opens a TCP connection (no delay) whose events go to `events`; rejects when it cannot
   * (refused, unreachable).
   */
  connectTcp(hostname: string, port: number, events: TcpSocketEvents): Promise<TcpSocket>;
  /** Adds a signal listener (replacing the default action); returns its remover. */
  onSignal(signal: ListenSignal, listener: () => void): () => void;
  /**
   * Reads a whole file as UTF-8. Rejects when it is missing or unreadable, with the errno
   * name (ENOENT, EACCES, EISDIR ...) as the error's `code` on both runtimes.
   */
  readTextFile(path: string): Promise<string>;
  /**
   * Reads a whole regular file or pipe as bytes, saying which of the two it read; rejects as
   * readTextFile does, and (code EFBIG) once it is larger than `maxBytes`, or (ENOTSUP) when
   * it is another kind of file.
   */
  readFile(path: string, maxBytes: number): Promise<{ bytes: Uint8Array; pipe: boolean }>;
  /** The canonical absolute path (symlinks, "." and ".." resolved); undefined when it does not exist. */
  realPath(path: string): string | undefined;
  /** Size, modification time and mode of a regular file; undefined when missing or not a regular file. */
  statFile(path: string): Promise<FileStat | undefined>;
  /**
   * Opens the regular file at `path` to send it. Deno opens it here and takes size and time
   * from the open file; Bun too, and reads a small one whole here. Bun.serve opens a larger
   * file body itself, by path, once the headers are promised: a file renamed over the path in
   * between is sent under the old one's length (runtime notes).
   */
  openFile(path: string): Promise<OpenFile | NoFile>;
  /** Writes bytes to fd 1 or fd 2; resolves when the runtime has accepted all of them. */
  write(fd: 1 | 2, bytes: Uint8Array): Promise<void>;
  /**
   * True when fd 1 and fd 2 are the same file, pipe or socket (`2>&1`: a systemd journal
   * stream, a terminal, `| tee`): their writes then land in one stream and must not mix.
   */
  outputsShared(): Promise<boolean>;
  exit(code: number): never;
  /** The git commit of a run from source, when it can be found; undefined otherwise. */
  sourceCommit(): string | undefined;
  /**
   * Sends one sd_notify datagram (e.g. "READY=1\nSTATUS=...") to the unix datagram socket at
   * `socketPath` (NOTIFY_SOCKET: a path, or "@name" for the abstract namespace). Returns false
   * (never throws) when it cannot be sent. Synchronous and never blocks: a full receive queue
   * is a false too. As sd_notify(3), only absolute paths and "@name" are accepted (not
   * "vsock:..."), and an empty message or one with a NUL byte is not sent.
   */
  notify(socketPath: string, message: string): boolean;
  /** CLOCK_MONOTONIC in microseconds (for sd_notify's MONOTONIC_USEC); undefined when unavailable. */
  monotonicMicros(): bigint | undefined;
  /**
   * Collects every exited child this runtime did not spawn (orphans re-parented to sluice),
   * never one of `spawn`'s, whose status `exited` reports. Never blocks.
   */
  reapOrphans(): ReapResult;
  /** The codings `compressionStream` supports on this runtime, most preferred first (empty: none). */
  readonly compressionEncodings: readonly ContentEncoding[];
  /**
   * A compressor for one response body that emits, after every chunk written to it, all the
   * bytes needed to decode that chunk (a sync flush), so a streamed body stays streamed.
   * Throws a RangeError for a coding not in `compressionEncodings`.
   */
  compressionStream(encoding: ContentEncoding): ReadableWritablePair<Uint8Array, Uint8Array>;
}
