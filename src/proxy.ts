/** @module The forwarder: streams a request to the child and its response back. */

import type { Context } from "hono";
import type { ChildTarget } from "./child-target.ts";
import type { Cidr } from "./config-values.ts";
import { Deadlines } from "./deadlines.ts";
import type { Exchange } from "./exchange.ts";
import type { Comeback } from "./readiness.ts";
import { downstreamResponseFields, upstreamRequestHeaders } from "./forwarded-headers.ts";
import { markGenerated, plainText } from "./generated-errors.ts";
import { requestTarget } from "./request-target.ts";
import { type HeaderFields, UpstreamConnectError, type UpstreamFetch } from "./upstream/http1-client.ts";
import { IDEMPOTENT_METHODS, parseLength, UpstreamUnansweredError } from "./upstream/http1-wire.ts";
import { upstreamErrorText } from "./upstream/error-text.ts";

export interface ProxyOptions {
  /** Where the child listens now (a rolling restart moves it): read as each request goes out. */
  target: () => ChildTarget;
  fetch: UpstreamFetch;
  upstreamTimeoutMs: number;
  /** 0 means no limit. */
  maxRequestBody: number;
  /**
   * Longest pause while the client sends its request body, then 408; 0 means no limit.
   * @default 0
   */
  bodyTimeoutMs?: number;
  trustedProxies: readonly Cidr[];
  /** A last edit of the upstream request's headers (X-Sendfile-Type, see middleware/x-sendfile.ts). */
  editRequestHeaders?: (fields: HeaderFields) => void;
  /**
   * Called when the child refused the connection: resolves "back" once the request should be
   * sent again (the child was restarted), "gone" when it did not come back within the hold
   * limits (503, as for a held request), "stayed" when it never went (502). Without it, a
   * refused connection is a 502.
   */
  childComeback?: (exchange: Exchange) => Promise<Comeback>;
  /**
   * True when an error reading the request body means the client went away (Runtime.isClientDisconnect).
   * @default never
   */
  isClientDisconnect?: (error: unknown) => boolean;
}

export type ProxyEnv = { Bindings: { exchange: Exchange } };

class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
}

const ERROR_TEXT = {
  400: "Bad Request",
  408: "Request Timeout",
  413: "Payload Too Large",
  426: "Upgrade Required",
  499: "Client Closed Request",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
} as const;

/**
 * Plain-text error responses, marked as sluice's own (see middleware/error-pages.ts); never
 * any internal detail. `detail` says what was wrong with the request, never quoting it.
 */
export function errorResponse(status: keyof typeof ERROR_TEXT, exchange: Exchange, detail?: string): Response {
  const headers = new Headers({ "x-request-id": exchange.requestId });
  if (status === 503) headers.set("retry-after", "1");
  if (status === 413 || status === 408 || exchange.abortReason === "body-malformed") {
    headers.set("connection", "close"); // the unread body stays on the connection
  }
  const text = detail === undefined ? ERROR_TEXT[status] : `${ERROR_TEXT[status]}: ${detail}`;
  return markGenerated(plainText(`${text}\n`, status, headers));
}

/**
 * How long an upstream request runs before its exchange listens for the client's
 * disconnect (see Exchange.watchClient): a client that goes away cancels the upstream
 * request at most this much later than it would with a listener from the start, and one
 * that goes away from a request answered sooner is logged with the answer's status, not 499.
 */
const CLIENT_WATCH_DELAY_MS = 50;

export function proxy({
  target,
  fetch,
  upstreamTimeoutMs,
  maxRequestBody,
  bodyTimeoutMs = 0,
  trustedProxies,
  editRequestHeaders,
  childComeback,
  isClientDisconnect = () => false,
}: ProxyOptions) {
  const waitingForHeaders = new Deadlines<Exchange>(upstreamTimeoutMs, (exchange) => exchange.abort("upstream-timeout"));
  // Aborting the exchange aborts the upstream request, which cancels the body it was reading.
  const bodyPaused = bodyTimeoutMs > 0 ? new Deadlines<Exchange>(bodyTimeoutMs, (exchange) => exchange.abort("body-timeout")) : undefined;
  const slowToAnswer = new Deadlines<Exchange>(CLIENT_WATCH_DELAY_MS, (exchange) => exchange.watchClient());
  return async function forward(c: Context<ProxyEnv>): Promise<Response> {
    const exchange = c.env.exchange;
    const incoming = exchange.request;
    const headers = upstreamRequestHeaders(exchange, trustedProxies);
    if (headers === undefined) return errorResponse(400, exchange, "a header field value holds a control character");
    // A length given twice with the same value, which both runtimes take, comes as "5000, 5000":
    // as a number, that was no length at all (NaN), and the request went to the app.
    const declared = incoming.headers.get("content-length");
    const declaredLength = declared === null ? null : (parseLength(declared) ?? 0);
    // bytesIn counts what is read of the body (countBody), never the length the client
    // declared: a claim of any size, which a 413 refuses without reading a byte.
    if (declaredLength !== null) {
      if (maxRequestBody > 0 && declaredLength > maxRequestBody) return errorResponse(413, exchange);
    } else if (incoming.body !== null) {
      // Deno takes "Transfer-Encoding: gzip, chunked" and hands over the body still gzipped,
      // which the app would get as plain bytes (Bun refuses it: 400). RFC 9112 section 6.1.
      const codings = incoming.headers.get("transfer-encoding");
      if (codings !== null && codings.trim().toLowerCase() !== "chunked") {
        exchange.rejected = `transfer coding ${JSON.stringify(codings)}`;
        return errorResponse(501, exchange, "transfer codings other than chunked are not supported");
      }
    }
    // A declared length of 0 is no body, as Bun hands it over (null); Deno gives an empty
    // stream, which would count as a body sent, and a PUT the child died on would not go again.
    const noBody = incoming.body === null || declaredLength === 0;
    let awaitingAnswer = true;
    // --upstream-timeout counts the child's time only: it is off while sluice waits for the
    // client's next chunk (--body-timeout's wait) and starts again as each chunk goes on, so an
    // upload runs as long as it flows and the wait for the answer starts at the body's end.
    const body = noBody ? null : countBody(incoming.body!, exchange, {
      limit: maxRequestBody,
      paused: bodyPaused,
      isClientDisconnect,
      upstreamWait: {
        pause: () => waitingForHeaders.delete(exchange),
        resume: () => awaitingAnswer && waitingForHeaders.add(exchange),
      },
    });

    waitingForHeaders.add(exchange);
    slowToAnswer.add(exchange);
    // validTarget answered requests without a path.
    const child = target();
    exchange.child = child;
    let url = child.origin + requestTarget(incoming.url)!;
    editRequestHeaders?.(headers);
    const upstreamTrace = exchange.trace?.startUpstream(incoming.method, url, headers);
    let sentAt = performance.now();
    const send = () =>
      fetch(url, {
        method: incoming.method,
        headers,
        body,
        signal: exchange,
        responseHeaders: (fields) => downstreamResponseFields(fields, exchange.requestId),
      });
    try {
      let upstream: Response;
      try {
        upstream = await send();
      } catch (error) {
        // A child that just exited refuses before sluice notices: with a restart coming, the
        // request waits for it as a held one would, then goes again (nothing of it was sent).
        // So does an idempotent request without a body that the child took and died on
        // before answering (a worker killed with its master): it may run twice, which its
        // method allows (RFC 9110 section 9.2.2), and only once the child as a whole is gone.
        if (!(error instanceof UpstreamConnectError || isReplayable(error, incoming.method))) throw error;
        const now = target();
        if (now !== child) {
          // A rolling restart's old child refused it or died on it after requests moved to
          // the new one: there is no comeback to wait for, and the new child takes it at once.
          exchange.child = now;
          url = now.origin + requestTarget(incoming.url)!;
        } else {
          if (childComeback === undefined) throw error;
          waitingForHeaders.delete(exchange);
          const comeback = await childComeback(exchange);
          if (comeback === "gone") throw new ChildGoneError(error);
          if (comeback === "stayed") throw error;
          waitingForHeaders.add(exchange);
        }
        sentAt = performance.now();
        upstream = await send();
      }
      exchange.upstreamMs = performance.now() - sentAt;
      upstreamTrace?.answered(upstream.status);
      // Its header fields were edited before it was made (hop-by-hop ones gone, X-Request-Id
      // added); a body it cannot have is dropped by the server (Server#respond).
      return upstream;
    } catch (error) {
      exchange.clientGone(); // a failed upload, say, because the client went away
      upstreamTrace?.failed(exchange.abortReason ?? "connection");
      switch (exchange.abortReason) {
        case "body-too-large":
          return errorResponse(413, exchange);
        case "body-timeout":
          return errorResponse(408, exchange);
        case "body-malformed":
          return errorResponse(400, exchange, "the request body is malformed");
        case "client-cancel":
          return errorResponse(499, exchange);
        case "aborted":
          return errorResponse(503, exchange);
        case "upstream-timeout":
          return errorResponse(504, exchange);
      }
      exchange.upstreamError = upstreamErrorText(error);
      return errorResponse(error instanceof ChildGoneError ? 503 : 502, exchange);
    } finally {
      awaitingAnswer = false;
      waitingForHeaders.delete(exchange);
      slowToAnswer.delete(exchange);
      upstreamTrace?.end();
    }
  };
}

/**
 * The child went away with the request unanswered and did not come back within the hold
 * limits: not ready, as for a held request (503). Its cause, the connection's failure, is
 * what the access record names.
 */
class ChildGoneError extends Error {
  constructor(cause: unknown) {
    super("the child did not come back in time", { cause });
  }
}

function isReplayable(error: unknown, method: string): boolean {
  return error instanceof UpstreamUnansweredError && IDEMPOTENT_METHODS.has(method);
}

/**
 * Passes the request body through, counting it and enforcing the size limit as it streams;
 * `paused` bounds each wait for the client's next chunk (waits for the upstream to take one
 * do not count), and `upstreamWait` is told when such a wait begins and ends.
 */
function countBody(
  body: ReadableStream<Uint8Array>,
  exchange: Exchange,
  { limit, paused, isClientDisconnect, upstreamWait }: {
    limit: number;
    paused: Deadlines<Exchange> | undefined;
    isClientDisconnect: (error: unknown) => boolean;
    upstreamWait: { pause(): void; resume(): void };
  },
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let counted = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      paused?.add(exchange);
      upstreamWait.pause();
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // A client gone midway is a cancel (499), which Deno tells only through the error.
        // One still there sent framing the runtime could not read: Deno's body stream errors
        // ("invalid HTTP/1 request"), where Bun answers 400 itself. The client's fault, not
        // the upstream's: 400, not 502.
        if (isClientDisconnect(error)) exchange.abort("client-cancel");
        else if (!exchange.clientGone()) {
          exchange.rejected = `malformed request body (${error instanceof Error ? error.message : String(error)})`;
          exchange.abort("body-malformed");
        }
        throw error;
      } finally {
        paused?.delete(exchange);
      }
      upstreamWait.resume();
      const { done, value } = chunk;
      if (done) return controller.close();
      counted += value.byteLength;
      exchange.bytesIn = counted;
      if (limit > 0 && counted > limit) {
        const error = new BodyTooLarge(`request body over --max-request-body ${limit}`);
        exchange.abort("body-too-large");
        controller.error(error);
        await reader.cancel(error).catch(() => {});
        return;
      }
      controller.enqueue(value);
    },
    cancel(reason) {
      paused?.delete(exchange);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
