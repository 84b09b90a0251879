/** @module denoServe: Runtime.serve on Deno.serve, with a listener that outlives a failed accept. */

import { hasToken } from "../upstream/http1-wire.ts";
import { editAnswer, withHeader } from "./answer-headers.ts";
import { plainServerError } from "./server-error.ts";
import type { HttpListener, ServeOptions } from "./types.ts";
import { denoUpgradeWebSocket } from "./websocket-deno.ts";

/**
 * The first wait before listening again after the listener failed. It doubles, up to the
 * longest, while listeners keep failing within STEADY_MS of opening (a flood that lasts).
 */
const RELISTEN_FIRST_MS = 100;
const RELISTEN_LONGEST_MS = 2_000;
const STEADY_MS = 10_000;

const closingOnce = (response: Response): Response =>
  hasToken(response.headers.get("connection"), "close") ? withHeader(response, "connection", null) : response;

/**
 * Deno.serve's accept loop ends for good on an accept error, such as EMFILE when a flood of
 * connections used up the open-file limit: `finished` rejects, the port refuses, and the
 * rejection unhandled ends the process, orphaning the child (measured on 2.9.6, a bare
 * Deno.serve does the same). Connections already accepted go on. So a failed listener is
 * replaced by a new one on the same port, tried again with backoff while the failure lasts.
 */
export function denoServe({ hostname, port, handler, onError, onListenerFailed }: ServeOptions): Promise<HttpListener> {
  let current: Deno.HttpServer<Deno.NetAddr>;
  let openedAt = 0;
  let waitMs = RELISTEN_FIRST_MS;
  /** Failed listeners' shutdowns: each settles once the connections it accepted are done. */
  const failed = new Set<Promise<void>>();
  let stopping = false;
  let relisten: ReturnType<typeof setTimeout> | undefined;

  const open = (at: number, onListen: (addr: Deno.NetAddr) => void): void => {
    const server = Deno.serve({
      hostname,
      port: at,
      onListen,
      onError: onError ?? plainServerError,
      // Never undefined here: an upgrade on Deno answers with its 101 Response (denoUpgradeWebSocket).
      handler: (request, info) => {
        const answer = handler(request, { remoteAddress: (info.remoteAddr as Deno.NetAddr).hostname ?? "" });
        // Deno adds its own `connection: close` for a client that asked to close: an answer
        // that says so itself (sluice's 413, 408 or 431, any answer once the stop began) went twice.
        return (hasToken(request.headers.get("connection"), "close") ? editAnswer(answer, closingOnce) : answer) as Response | Promise<Response>;
      },
    });
    current = server;
    openedAt = performance.now();
    server.finished.catch((error) => {
      if (stopping) return;
      const done: Promise<void> = server.shutdown().catch(() => {}).then(() => void failed.delete(done));
      failed.add(done);
      if (performance.now() - openedAt > STEADY_MS) waitMs = RELISTEN_FIRST_MS;
      failedAgain(error, at === 0 ? server.addr.port : at);
    });
  };

  const failedAgain = (error: unknown, at: number): void => {
    onListenerFailed?.(error, waitMs);
    relisten = setTimeout(() => {
      try {
        open(at, () => {});
      } catch (error) {
        failedAgain(error, at);
      }
    }, waitMs);
    waitMs = Math.min(waitMs * 2, RELISTEN_LONGEST_MS);
  };

  const { promise: listening, resolve } = Promise.withResolvers<Deno.NetAddr>();
  open(port, resolve);
  return listening.then((addr) => ({
    port: addr.port,
    close() {
      // Listener closes now; requests in flight continue, also those a failed listener
      // accepted. Settles after them.
      stopping = true;
      clearTimeout(relisten);
      return Promise.all([current.shutdown().catch(() => {}), ...failed]).then(() => {});
    },
    // shutdown() closes the listening socket on the event loop's next turn, not at once: a
    // timer's turn is the first after it (40 of 40 bare closes refused then, none before).
    refusing: () => new Promise<void>((resolve) => setTimeout(resolve, 0)),
    closeAllConnections() {
      // Deno has no safe way to cut connections from outside (aborting the serve signal
      // after shutdown() crashes Deno with BadResource): sluice aborts each request in
      // flight itself, which closes its connection.
      return false;
    },
    upgradeWebSocket: (request, accept) => denoUpgradeWebSocket(request, accept, () => stopping),
    // Deno.serve has no idle timeout (see httpLimits in deno.ts).
    idleTimeoutSafeMs: undefined,
    holdOpen() {},
    releaseHold() {},
  }));
}
