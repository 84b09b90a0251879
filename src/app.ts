/** @module buildApp: the whole request pipeline, assembled in one place, read top to bottom. */

import { Context, type MiddlewareHandler } from "hono";
import type { ResponseCache } from "./cache/response-cache.ts";
import { type ChildTarget, childTarget } from "./child-target.ts";
import type { Config } from "./config.ts";
import type { EndListener, Exchange } from "./exchange.ts";
import { accessLog } from "./middleware/access-log.ts";
import { cache } from "./middleware/cache.ts";
import { chain } from "./middleware/chain.ts";
import { compression } from "./middleware/compression.ts";
import { errorPages } from "./middleware/error-pages.ts";
import { childComeback, holdUntilReady } from "./middleware/hold-until-ready.ts";
import { requestId } from "./middleware/request-id.ts";
import { requestLimits } from "./middleware/request-limits.ts";
import { requestMetrics } from "./middleware/request-metrics.ts";
import { staticFiles } from "./middleware/static-files.ts";
import { validTarget } from "./middleware/valid-target.ts";
import { sendfileRequestHeader, xSendfile } from "./middleware/x-sendfile.ts";
import { proxy, type ProxyEnv } from "./proxy.ts";
import type { Readiness } from "./readiness.ts";
import type { Runtime } from "./runtime/types.ts";
import type { Metrics } from "./telemetry/metrics.ts";
import type { UpstreamFetch } from "./upstream/http1-client.ts";
import { connectTcpStreams } from "./upstream/tcp-streams.ts";
import { isWebSocketUpgrade, websocketProxy } from "./websockets/websocket-proxy.ts";

export interface AppDeps {
  readiness: Readiness;
  metrics: Metrics;
  upstreamFetch: UpstreamFetch;
  /** Where the child listens now; --target-host and --target-port when absent (no rolling restarts). */
  childTarget?: () => ChildTarget;
  /** TCP connections to the child, for WebSocket upgrades. */
  upstreamConnect: Runtime["connectTcp"];
  /** The runtime's compressors. */
  compressors: Pick<Runtime, "compressionEncodings" | "compressionStream">;
  /** The response cache, shared by the pipelines whose limits match; absent when caching is off. */
  responseCache?: ResponseCache | undefined;
  /** The runtime's file access, for X-Sendfile and static files. */
  files: Pick<Runtime, "realPath" | "openFile">;
  /** The runtime's own HTTP limits, and its header counter. */
  http: Pick<Runtime, "httpLimits" | "countHeaders" | "isClientDisconnect">;
  /** The pipeline's tracing when tracing is on; absent, the pipeline does no tracing work. */
  tracing?: PipelineTracing | undefined;
  /** Frees what was acquired for this pipeline (its tracer provider lease). */
  release?: () => void;
}

/** What tracing adds to a pipeline (telemetry/tracing.ts makes it). */
export interface PipelineTracing {
  /** Starts each request's server span; first in the chain. */
  middleware: MiddlewareHandler<ProxyEnv>;
  /** Ends it, after the last byte. */
  onEnd: EndListener;
}

export interface Pipeline {
  /** Answers one exchange: the Hono middleware chain, then the proxy. */
  handle: (exchange: Exchange) => Response | Promise<Response>;
  /** Observers of each exchange's end (after the last byte, or the cut). */
  onEnd: EndListener[];
  /** Frees what the pipeline holds; called once, after its last exchange ended. */
  release(): void;
}

/** The whole pipeline: what runs for each request, in order, and what observes its end. */
export function buildApp(config: Config, { readiness, metrics, upstreamFetch, childTarget: target, upstreamConnect, compressors, files, responseCache, http, tracing, release }: AppDeps): Pipeline {
  if (config.files === undefined) throw new TypeError("buildApp needs config.files: run prepareFiles on the config first");
  const { sendfileDirs, publicDir, pages } = config.files;
  const onEnd: EndListener[] = [requestMetrics(metrics)];
  if (config.accessLog) onEnd.push(accessLog());
  if (tracing) onEnd.push(tracing.onEnd);

  const holdLimits = { timeoutMs: config.holdTimeout, maxHeld: config.maxHeldRequests };
  const limits = requestLimits({
    maxHeaderCount: config.maxHeaderCount,
    maxHeaderSize: config.maxHeaderSize,
    runtimeLimits: http.httpLimits,
    countHeaders: http.countHeaders,
  });
  if (target === undefined) {
    const fixed = childTarget(config.targetHost, config.targetPort);
    target = () => fixed;
  }
  const forward = proxy({
    target,
    fetch: upstreamFetch,
    upstreamTimeoutMs: config.upstreamTimeout,
    maxRequestBody: config.maxRequestBody,
    bodyTimeoutMs: config.bodyTimeout,
    trustedProxies: config.trustedProxies,
    editRequestHeaders: sendfileRequestHeader(config.xSendfile),
    ...(config.restart === "never" ? {} : { childComeback: childComeback(readiness, holdLimits) }),
    isClientDisconnect: http.isClientDisconnect,
  });
  const forwardWebSocket = websocketProxy({
    target,
    connect: (hostname, port) => connectTcpStreams(upstreamConnect, hostname, port),
    upstreamTimeoutMs: config.upstreamTimeout,
    trustedProxies: config.trustedProxies,
  });
  // Every request takes the same route, so it gets Hono's Context without Hono's router
  // (parsing the path, matching "*", a then/catch pair: 1-3 us per request on Bun, measured).
  const pipeline = chain<ProxyEnv>([
    ...(tracing ? [tracing.middleware] : []),
    requestId(),
    // Before anything reads the path: what the runtime made of a bad Host or target is no path.
    validTarget(),
    ...(limits ? [limits] : []),
    // Before compression: a hit is stored compressed (per Accept-Encoding, which compression
    // adds to Vary) and costs no compression work.
    ...(responseCache ? [cache(responseCache, { observe: (event) => metrics.cacheEvents.inc(event), trustedProxies: config.trustedProxies })] : []),
    // Middlewares that would only pass requests on are left out: each step costs every request.
    ...(config.compression
      ? [compression({
        minimumBytes: config.compressionMinSize,
        disableOnAuth: config.compressionDisableOnAuth,
        encodings: compressors.compressionEncodings,
        compressionStream: compressors.compressionStream,
      })]
      : []),
    ...(publicDir !== undefined ? [staticFiles({ root: publicDir, files })] : []),
    ...(Object.keys(pages).length > 0 ? [errorPages(pages)] : []),
    holdUntilReady(readiness, holdLimits),
    ...(config.xSendfile ? [xSendfile({ directories: sendfileDirs, files })] : []),
  ], (c) => (isWebSocketUpgrade(c.env.exchange.request) ? forwardWebSocket(c) : forward(c)));
  return {
    handle: (exchange) => pipeline(new Context(exchange.request, { env: { exchange } })),
    onEnd,
    release: release ?? (() => {}),
  };
}
