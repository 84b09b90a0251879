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
 * Gives a request without a Host header the authority its client named another way, as Host:
 * an HTTP/2 request's `:authority` (Deno answers an HTTP/2 prior-knowledge preface with HTTP/2
 * on the same port, and hands such a request over without a Host header, its authority only
 * in Request.url) or an absolute-form target's (RFC 9112 section 3.2.2). The app got its own
 * address as Host instead, without X-Forwarded-Host, and the cache keyed every HTTP/2
 * request on no host at all. Deno's URL for a request that names no authority has
 * `localhost:<port>` (`fallback`): that one stays without Host, as an HTTP/1.0 request
 * without one is passed on (an HTTP/2 client that names exactly that authority too).
 * Request headers are immutable: the request's own `headers` property shadows the getter,
 * so the body, the signal, the method and a WebSocket upgrade stay the runtime's own.
 */
function namedAuthority(request: Request, fallback: string): void {
  const url = request.url;
  const start = url.indexOf("://"); // none in "*" or CONNECT's bare authority
  if (start < 0) return;
  let end = start + 3;
  while (end < url.length && url[end] !== "/" && url[end] !== "?" && url[end] !== "#") end++;
  const authority = url.slice(start + 3, end);
  if (authority === "" || authority === fallback) return;
  const headers = new Headers([["host", authority]]);
  request.headers.forEach((value, name) => headers.append(name, value));
  Object.defineProperty(request, "headers", { value: headers });
}

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
        if (!request.headers.has("host")) namedAuthority(request, `localhost:${server.addr.port}`);
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
