/**
 * @module serveConnections: Deno's HTTP listener with idle and header timeouts. Deno.serve has
 * neither (a connection that sends nothing, or one byte a second, stays open for good: see
 * docs/runtime-notes.md), and no handle on a single connection. So sluice accepts the TCP
 * connections itself and runs Deno's HTTP server on each one (Deno's internal
 * serveHttpOnConnection, the function Deno.serve's own per-connection path uses), which
 * gives each connection a graceful `shutdown()`: at once when idle, after the response
 * otherwise.
 */

import { Deadlines } from "../deadlines.ts";
import type { HttpListener, ServeOptions } from "./types.ts";

interface ConnectionServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

interface ServeHandlerInfo {
  remoteAddr: Deno.NetAddr;
  completed: Promise<void>;
}

type ServeOnConnection = (
  connection: Deno.Conn,
  signal: AbortSignal | undefined,
  handler: (request: Request, info: ServeHandlerInfo) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => ConnectionServer;

function internalServeOnConnection(): ServeOnConnection {
  const internals = (Deno as unknown as Record<symbol | string, unknown>)[(Deno as unknown as { internal: symbol }).internal] as
    | { serveHttpOnConnection?: ServeOnConnection }
    | undefined;
  const serve = internals?.serveHttpOnConnection;
  if (typeof serve !== "function") throw new Error(`Cannot serve HTTP: this Deno (${Deno.version.deno}) lacks serveHttpOnConnection`);
  return serve;
}

/** One accepted connection and its requests in flight. */
class Connection {
  inFlight = 0;
  /** A response asked for `connection: close`, or the listener is closing. */
  closeWhenIdle = false;
  server: ConnectionServer | undefined;

  close(): void {
    this.server?.shutdown().catch(() => {});
  }
}

export function serveConnections(options: ServeOptions): Promise<HttpListener> {
  // Deno.listen throws at once (AddrInUse ...): turned into a rejection, as Bun's adapter does.
  return new Promise((resolve) => resolve(listenAndServe(options)));
}

function listenAndServe(
  { hostname, port, handler, onError, idleTimeoutMs = 0, headerTimeoutMs = 0 }: ServeOptions,
): HttpListener {
  const serveOnConnection = internalServeOnConnection();
  const listener = Deno.listen({ hostname, port });
  const open = new Set<Connection>();
  const idle = new Deadlines<Connection>(idleTimeoutMs, (connection) => connection.close());
  const waitingForHeaders = new Deadlines<Connection>(headerTimeoutMs, (connection) => connection.close());
  const handleError = onError ?? ((error: unknown) => new Response(`internal error: ${String(error)}`, { status: 500 }));

  const ended = (connection: Connection): void => {
    if (--connection.inFlight > 0) return;
    if (connection.closeWhenIdle) connection.close();
    else if (idleTimeoutMs > 0) idle.add(connection);
  };

  const serveRequest = async (connection: Connection, request: Request, info: ServeHandlerInfo): Promise<Response> => {
    waitingForHeaders.delete(connection);
    idle.delete(connection);
    connection.inFlight++;
    info.completed.then(() => ended(connection), () => ended(connection));
    const response = await handler(request, { remoteAddress: info.remoteAddr.hostname ?? "" });
    // Deno sends a handler's `connection: close` but keeps the connection open (see
    // docs/runtime-notes.md): close it once the response is out.
    if (response.headers.get("connection") === "close") connection.closeWhenIdle = true;
    return response;
  };

  const accept = (conn: Deno.TcpConn): void => {
    conn.setNoDelay(true);
    const connection = new Connection();
    open.add(connection);
    connection.server = serveOnConnection(conn, undefined, (request, info) => serveRequest(connection, request, info), handleError, () => {});
    if (headerTimeoutMs > 0) waitingForHeaders.add(connection);
    connection.server.finished.catch(() => {}).finally(() => {
      open.delete(connection);
      idle.delete(connection);
      waitingForHeaders.delete(connection);
    });
  };

  const accepting = (async () => {
    try {
      for await (const conn of listener) accept(conn);
    } catch {
      // The listener was closed.
    }
  })();

  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
      const servers = [...open].map((connection) => {
        connection.closeWhenIdle = true;
        return connection.server!;
      });
      // Graceful, as Deno.serve's shutdown(): idle connections close now, busy ones after their response.
      await Promise.all(servers.map((server) => server.shutdown().catch(() => {})));
      await Promise.all(servers.map((server) => server.finished.catch(() => {})));
    },
    closeAllConnections() {
      // Cutting a connection from outside is not safe on Deno: sluice aborts each request in
      // flight itself, which closes its connection.
    },
    requestEnded() {
      // Each connection counts its own requests (see serveRequest).
    },
  };
}
