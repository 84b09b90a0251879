/**
 * @module websocketProxy: the pipeline's last step for WebSocket upgrades. It asks the child
 * first, so the client gets the child's own subprotocol choice and the child's own refusal
 * (a 403, say, as the child sent it); an accepted upgrade is left for the server to answer
 * with 101 (see takeWebSocketUpgrade), and a WebSocketRelay carries the connection from then on.
 */

import type { Context } from "hono";
import type { ChildTarget } from "../child-target.ts";
import type { Cidr } from "../config-values.ts";
import type { Exchange } from "../exchange.ts";
import { upstreamRequestHeaders } from "../forwarded-headers.ts";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import { requestTarget } from "../request-target.ts";
import type { TcpConnection, WebSocketAccept } from "../runtime/types.ts";
import { upstreamErrorText } from "../upstream/error-text.ts";
import { upstreamHandshake } from "./handshake.ts";
import { WebSocketRelay } from "./relay.ts";

export interface WebSocketProxyOptions {
  /** Where the child listens now (a rolling restart moves it): read as each handshake goes out. */
  target: () => ChildTarget;
  connect: (hostname: string, port: number) => Promise<TcpConnection>;
  /** Longest wait for the child's answer to the upgrade (504 after). */
  upstreamTimeoutMs: number;
  trustedProxies: readonly Cidr[];
}

/** An upgrade the child accepted, waiting for the server to answer the client with 101. */
export interface AcceptedUpgrade {
  accept: WebSocketAccept;
  /** Closes both sides with 1001 (the drain deadline). */
  goAway(): void;
}

const accepted = new WeakMap<Exchange, AcceptedUpgrade>();

/** The upgrade the pipeline accepted for `exchange`, if any; taken once, by the server. */
export function takeWebSocketUpgrade(exchange: Exchange): AcceptedUpgrade | undefined {
  const upgrade = accepted.get(exchange);
  if (upgrade) accepted.delete(exchange);
  return upgrade;
}

const hasToken = (value: string | null, token: string): boolean => new RegExp(`(^|,)\\s*${token}\\s*(,|$)`, "i").test(value ?? "");

/** A WebSocket opening handshake (RFC 6455 section 4.2.1); anything else is proxied as plain HTTP. */
export function isWebSocketUpgrade(request: Request): boolean {
  const { headers } = request;
  return request.method === "GET" && headers.has("sec-websocket-key") && hasToken(headers.get("upgrade"), "websocket") &&
    hasToken(headers.get("connection"), "upgrade");
}

export function websocketProxy({ target: childTarget, connect, upstreamTimeoutMs, trustedProxies }: WebSocketProxyOptions) {
  return async function forwardWebSocket(c: Context<ProxyEnv>): Promise<Response> {
    const exchange = c.env.exchange;
    const { request } = exchange;
    const refused = refusedHandshake(exchange);
    if (refused) return refused;
    const target = requestTarget(request.url)!; // validTarget answered requests without a path
    const child = childTarget();
    exchange.child = child;
    const { hostname, port, origin } = child;
    const fields = upstreamRequestHeaders(exchange, trustedProxies);
    if (fields === undefined) return errorResponse(400, exchange, "a header field value holds a control character");
    // The handshake is the call to the app: a client span, whose traceparent the app gets.
    const upstreamTrace = exchange.trace?.startUpstream(request.method, `${origin}${target}`, fields);
    const headers = new Headers(fields);
    exchange.watchClient(); // a client gone while the child answers aborts the handshake
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort("upstream-timeout"), upstreamTimeoutMs);
    const sentAt = performance.now();
    let result: Awaited<ReturnType<typeof upstreamHandshake>>;
    try {
      result = await upstreamHandshake({ connect, hostname, port, target, headers, signal: AbortSignal.any([exchange.signal, timeout.signal]) });
    } catch (error) {
      exchange.clientGone();
      const reason = exchange.abortReason ?? (timeout.signal.aborted ? "upstream-timeout" : "connection");
      upstreamTrace?.failed(reason);
      upstreamTrace?.end();
      if (exchange.abortReason === "client-cancel") return errorResponse(499, exchange);
      if (exchange.abortReason === "aborted") return errorResponse(503, exchange);
      if (timeout.signal.aborted) return errorResponse(504, exchange);
      exchange.upstreamError = upstreamErrorText(error);
      return errorResponse(502, exchange);
    } finally {
      clearTimeout(timer);
    }
    exchange.upstreamMs = performance.now() - sentAt;
    upstreamTrace?.answered(result.upgraded ? 101 : result.response.status);
    upstreamTrace?.end();
    if (!result.upgraded) {
      result.response.headers.set("x-request-id", exchange.requestId);
      return result.response;
    }
    const relay = new WebSocketRelay(exchange, result);
    result.headers.set("x-request-id", exchange.requestId);
    accepted.set(exchange, { accept: { protocol: result.protocol, headers: result.headers, events: relay }, goAway: () => relay.goAway() });
    // A stand-in the middlewares pass along untouched (no body); the server answers 101 instead.
    return new Response(null, { status: 204 });
  };
}

/**
 * A client handshake the runtime would refuse only after the child accepted it (Bun answers 426
 * or 400 itself) or would accept however wrong (Deno takes any version and key): answered here,
 * before the child is asked (RFC 6455 sections 4.2.1 and 4.4).
 */
function refusedHandshake(exchange: Exchange): Response | undefined {
  const { headers } = exchange.request;
  if (headers.get("sec-websocket-version")?.trim() !== "13") {
    const response = errorResponse(426, exchange, "only WebSocket version 13 is supported");
    response.headers.set("sec-websocket-version", "13");
    return response;
  }
  // The base64 of 16 bytes.
  if (!/^[A-Za-z0-9+/]{22}==$/.test(headers.get("sec-websocket-key")!.trim())) return errorResponse(400, exchange, "invalid Sec-WebSocket-Key");
  return undefined;
}

