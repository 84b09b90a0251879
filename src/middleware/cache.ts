/**
 * @module cache: answers GET and HEAD from a ResponseCache (304 when the client's validator
 * matches), and stores public responses while their bodies stream through to the client:
 * nothing is held back, and a body is stored only once it completed within the item limit.
 */

import type { Context, MiddlewareHandler, Next } from "hono";
import { freshnessLifetime, requestPolicy, type RequestPolicy, resourceUrl, varyNames } from "../cache/cache-rules.ts";
import type { CacheEntry, ResponseCache } from "../cache/response-cache.ts";
import type { Cidr } from "../config-values.ts";
import type { Exchange } from "../exchange.ts";
import { hasFileBody } from "../files/file-response.ts";
import { trustsForwarding } from "../forwarded-headers.ts";
import { parseHttpDate } from "../http-date.ts";
import { errorResponse, type ProxyEnv } from "../proxy.ts";
import { hasContentType, hasWholeBody, markWholeBody, oneChunkStream } from "../whole-body.ts";
import { answerOf, replaceResponse } from "./replace-response.ts";

/** What happened to one request or one response, as far as the cache is concerned. */
export type CacheEvent =
  | "hit" // answered from the cache
  | "not-modified" // answered 304 from the cache (If-None-Match / If-Modified-Since)
  | "miss" // looked up, not found: forwarded
  | "bypass" // forwarded without looking: another method, Authorization, no-cache, Range ...
  | "collapsed" // answered from the cache after waiting for the same URL's miss to fetch it
  | "stored" // a response was stored, once its body had completed
  | "too-large" // a storable response passed through unstored: over the item limit
  | "cut"; // a storable response's body was cut short (client gone, upstream error): not stored

export interface CacheOptions {
  /** Called for each CacheEvent (metrics, tests). @default a no-op */
  observe?: (event: CacheEvent) => void;
  /**
   * The proxy's --trusted-proxies: a request from one is keyed by the scheme and host it
   * forwards (see resourceUrl). @default none
   */
  trustedProxies?: readonly Cidr[];
}

/** Methods that do not change the resource (RFC 9110 section 9.2.1); others invalidate it (RFC 9111 section 4.4). */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** Response headers a 304 repeats from the stored response (RFC 9110 section 15.4.5). */
const NOT_MODIFIED_HEADERS = new Set(["cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"]);

/**
 * Stored statuses whose Response must be built without a body, not even an empty one (the
 * Fetch standard's null body statuses: Deno throws, Bun does not; 101, 103 and 304 are never stored).
 */
const NULL_BODY_STATUSES = new Set([204, 205]);

const noop = (): void => {};

/**
 * Longest a miss waits for the same URL's miss already on its way to the app (nginx's
 * proxy_cache_lock_timeout default); then it goes to the app itself.
 */
export const FILL_WAIT_MS = 5000;

/**
 * Every response gets `X-Cache: hit|miss|bypass`; hits also get `Age` and the request's own
 * `X-Request-Id`. Put it after requestId and before holdUntilReady, so that hits are
 * answered even while the child is restarting.
 */
export function cache(store: ResponseCache, { observe = noop, trustedProxies = [] }: CacheOptions = {}): MiddlewareHandler<ProxyEnv> {
  /** The exchange's resourceUrl; trust is looked up only for requests that forward a scheme or host. */
  const urlOf = trustedProxies.length === 0
    ? (exchange: Exchange) => resourceUrl(exchange.request)
    : (exchange: Exchange) => resourceUrl(exchange.request, () => trustsForwarding(trustedProxies, exchange.clientAddress));
  // Not async: an async function's await costs every request a few microtask turns; this
  // takes one (see middleware/chain.ts for how next() answers).
  const middleware = function cache(c: Context<ProxyEnv>, next: Next): Response | Promise<Response> {
    const { exchange } = c.env;
    const request = exchange.request;
    const policy = requestPolicy(request);
    let url: string | undefined;
    if (policy === "use") {
      const entry = store.lookup(request, (url = urlOf(exchange)));
      if (entry !== undefined) return fromCache(store, entry, request, exchange.requestId, observe);
      if (request.method === "GET") {
        const fill = store.fillKey(request, url);
        if (store.fills.underWay(fill)) return waitForFill(c, next, url, fill);
        if (store.fills.worthCollapsing(url)) return forward(c, next, url, policy, store.fills.begin(fill, url));
      }
    }
    return forward(c, next, url, policy, noop);
  };
  return middleware as unknown as MiddlewareHandler<ProxyEnv>;

  /** Sends the request on, and caches what comes back; `filled` ends this miss's fill (see Fills) once that is decided. */
  function forward(
    c: Context<ProxyEnv>,
    next: Next,
    url: string | undefined,
    policy: RequestPolicy,
    filled: (storable: boolean) => void,
  ): Response | Promise<Response> {
    // Emptied meanwhile (a rolling restart): this answer may be the old code's.
    const generation = store.generation;
    // A failure anywhere ends the fill as not stored, and goes on.
    const failed = (error: unknown): never => {
      filled(false);
      throw error;
    };
    const after = (answered: Response | void) => {
      try {
        return afterUpstream(c, c.env.exchange, url, policy, generation, answerOf(c, answered), filled);
      } catch (error) {
        return failed(error);
      }
    };
    let rest: Response | Promise<Response | void>;
    try {
      rest = next() as unknown as Response | Promise<Response | void>;
    } catch (error) {
      return failed(error);
    }
    return rest instanceof Response ? after(rest) : rest.then(after, failed);
  }

  /**
   * A miss for a variant another miss is fetching now (`fill`, its fill key) waits for that
   * one (up to FILL_WAIT_MS, or until it is cut or its client leaves), then is answered from
   * the cache, or goes on to the app itself when the answer was not stored.
   */
  function waitForFill(c: Context<ProxyEnv>, next: Next, url: string, fill: string): Promise<Response> {
    const { exchange } = c.env;
    const { promise: filled, resolve } = Promise.withResolvers<void>();
    const ended = (): void => resolve();
    store.fills.join(fill, ended);
    exchange.watchClient();
    const signal = exchange.signal;
    signal.addEventListener("abort", ended, { once: true });
    const timer = setTimeout(ended, FILL_WAIT_MS);
    return filled.then(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", ended);
      // Cut by the stop's drain deadline, a waiting request gets its 503 as a held one does.
      if (exchange.aborted) return errorResponse(exchange.abortReason === "aborted" ? 503 : 499, exchange);
      const entry = store.lookup(exchange.request, url);
      if (entry !== undefined) return fromCache(store, entry, exchange.request, exchange.requestId, (event) => observe(event === "hit" ? "collapsed" : event));
      return forward(c, next, url, "use", noop);
    });
  }

  /** What the cache does with the answer to a request it did not answer itself. */
  function afterUpstream(
    c: Context<ProxyEnv>,
    exchange: Exchange,
    url: string | undefined,
    policy: RequestPolicy,
    generation: number,
    response: Response,
    filled: (storable: boolean) => void,
  ): Response | Promise<Response> {
    const request = exchange.request;
    const method = request.method;
    const label = policy === "use" ? "miss" : "bypass";
    observe(label);
    if (method !== "GET") {
      if (!SAFE_METHODS.has(method) && response.status < 400) store.invalidate(urlOf(exchange));
      return withXCache(c, response, label);
    }
    // A refresh's answer supersedes the stored one, whether or not it can be stored itself
    // (now private, a 404, too large ...); a 5xx does not (RFC 9111 section 4.3.3 lets the
    // stored response stand in for a failed validation, and sluice's own 502 while the
    // child restarts says nothing of the resource).
    if (policy === "refresh" && response.status < 500) store.remove(request, url ?? (url = urlOf(exchange)));
    if (policy === "bypass" || freshnessLifetime(response) === undefined) {
      filled(false);
      return withXCache(c, response, label);
    }
    const declared = response.headers.get("content-length");
    const length = declared === null ? undefined : Number(declared);
    if (length !== undefined && !(length <= store.maxItemSize)) {
      filled(false);
      observe("too-large");
      return withXCache(c, response, label);
    }
    const save = (body: Uint8Array<ArrayBuffer>): void => {
      // Emptied meanwhile: not stored, though the URL's answers still are storable.
      if (store.generation !== generation) return filled(true);
      const stored = store.store(request, response, body, (url ??= urlOf(exchange)));
      observe(stored ? "stored" : "too-large");
      if (stored) store.fills.stored(url, varyNames(response.headers.get("vary")));
      filled(stored);
    };
    // A body not stored after all (cut, too large) ends the fill too.
    const observeBody = (event: CacheEvent): void => {
      observe(event);
      filled(false);
    };
    if (response.body === null) {
      save(new Uint8Array(0));
      return withXCache(c, response, label);
    }
    if (hasWholeBody(response)) return storeWhole(c, response, label, save).finally(() => filled(false));
    if (hasFileBody(response)) return storeFileCopy(c, response, label, length, save, observeBody);
    const body = storeAsItStreams(response.body, length, store.maxItemSize, save, observeBody);
    const headers = new Headers(response.headers);
    headers.set("x-cache", label);
    return replaceResponse(c, new Response(body, { status: response.status, statusText: response.statusText, headers }));
  }
}

/**
 * A body the upstream client had whole in memory (a small answer that came with its head):
 * stored at once and sent as the bytes it is, as a hit is. A stream around it would go out
 * chunked on Bun, without its Content-Length (docs/runtime-notes.md).
 */
async function storeWhole(c: Context<ProxyEnv>, response: Response, label: string, save: (body: Uint8Array<ArrayBuffer>) => void): Promise<Response> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  save(bytes);
  const headers = new Headers(response.headers);
  headers.set("x-cache", label);
  // Bun's server would give bytes without a type its own (see oneChunkStream); a copy:
  // the entry's bytes stay the entry's.
  const body = hasContentType(headers) ? bytes : oneChunkStream(bytes.slice());
  return replaceResponse(c, markWholeBody(new Response(body, { status: response.status, statusText: response.statusText, headers })));
}

/**
 * A file's bytes (static files, X-Sendfile) go to the client as the runtime sends a file (Bun:
 * sendfile(2), with its Content-Length, which a stream around them would cost); the cache
 * reads a copy of its own, stored when it has the whole declared length (a file that changed
 * meanwhile is not stored).
 */
function storeFileCopy(
  c: Context<ProxyEnv>,
  response: Response,
  label: string,
  declared: number | undefined,
  save: (body: Uint8Array<ArrayBuffer>) => void,
  observe: (event: CacheEvent) => void,
): Response {
  response.clone().arrayBuffer().then(
    (copy) => (copy.byteLength === declared ? save(new Uint8Array(copy)) : observe("cut")),
    () => observe("cut"),
  );
  return withXCache(c, response, label);
}

/** The response to `request` from a stored entry: the whole response, its head (HEAD), or 304. */
function fromCache(
  store: ResponseCache,
  entry: CacheEntry,
  request: Request,
  requestId: string,
  observe: (event: CacheEvent) => void,
): Response {
  // Preconditions apply only to what would be a 2xx answer (RFC 9110 section 13.2.1): a
  // stored redirect is served as it is, whatever validator came with the request.
  if (entry.status < 300 && notModified(request.headers, entry)) {
    observe("not-modified");
    const headers = new Headers();
    for (const [name, value] of entry.headers) if (NOT_MODIFIED_HEADERS.has(name)) headers.append(name, value);
    stamp(headers, store.age(entry), requestId);
    return new Response(null, { status: 304, headers });
  }
  observe("hit");
  const headers = new Headers(entry.headers);
  stamp(headers, store.age(entry), requestId);
  const body = request.method === "HEAD" || NULL_BODY_STATUSES.has(entry.status)
    ? null
    : hasContentType(headers)
    ? entry.body
    : oneChunkStream(entry.body.slice()); // a copy: the entry's bytes stay the entry's
  return markWholeBody(new Response(body, { status: entry.status, headers }));
}


function stamp(headers: Headers, age: number, requestId: string): void {
  headers.set("age", String(age));
  headers.set("x-cache", "hit");
  if (requestId) headers.set("x-request-id", requestId);
}

/**
 * RFC 9110 section 13.1: If-None-Match (weak comparison, "*" matches any stored entry) and,
 * only without it, If-Modified-Since against the stored Last-Modified.
 */
function notModified(headers: Headers, entry: CacheEntry): boolean {
  const ifNoneMatch = headers.get("if-none-match");
  if (ifNoneMatch !== null) {
    if (ifNoneMatch.trim() === "*") return true;
    if (entry.etag === null) return false;
    const stored = weak(entry.etag);
    return ifNoneMatch.split(",").some((tag) => weak(tag.trim()) === stored);
  }
  const since = headers.get("if-modified-since");
  if (since === null || entry.lastModified === null) return false;
  // Only HTTP-dates count (RFC 9110 section 13.1.3): Date.parse took "2099" for a date.
  const sinceMs = parseHttpDate(since);
  const modifiedMs = parseHttpDate(entry.lastModified);
  return sinceMs !== undefined && modifiedMs !== undefined && modifiedMs <= sinceMs;
}

const weak = (tag: string): string => (tag.startsWith("W/") ? tag.slice(2) : tag);

/** The response with `X-Cache: value`: in place when its headers allow, else a copy. */
function withXCache(c: Context<ProxyEnv>, response: Response, value: string): Response {
  try {
    response.headers.set("x-cache", value);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    headers.set("x-cache", value);
    return replaceResponse(c, new Response(response.body, { status: response.status, statusText: response.statusText, headers }));
  }
}

/**
 * Passes `body` through chunk by chunk, pulled by the client (nothing read ahead, nothing
 * held back), keeping a copy of the bytes until they pass `limit`. `save` gets the whole
 * body once it completed: at its declared length, or at its end when none was declared.
 * A body that errors, is cancelled, or ends short of its declared length is never saved.
 */
function storeAsItStreams(
  body: ReadableStream<Uint8Array>,
  declared: number | undefined,
  limit: number,
  save: (body: Uint8Array<ArrayBuffer>) => void,
  observe: (event: CacheEvent) => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let chunks: Uint8Array[] | undefined = [];
  let length = 0;
  const complete = (): void => {
    const whole = new Uint8Array(length);
    let offset = 0;
    for (const chunk of chunks!) {
      whole.set(chunk, offset);
      offset += chunk.byteLength;
    }
    chunks = undefined;
    save(whole);
  };
  const giveUp = (event: "too-large" | "cut"): void => {
    if (chunks === undefined) return;
    chunks = undefined;
    observe(event);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let result: Awaited<ReturnType<typeof reader.read>>;
      try {
        result = await reader.read();
      } catch (error) {
        giveUp("cut");
        controller.error(error);
        return;
      }
      if (result.done) {
        if (chunks !== undefined) {
          if (declared === undefined || length === declared) complete();
          else giveUp("cut");
        }
        controller.close();
        return;
      }
      const chunk = result.value;
      if (chunks !== undefined) {
        length += chunk.byteLength;
        if (length > limit || (declared !== undefined && length > declared)) {
          giveUp("too-large");
        } else {
          // A copy: the producer may reuse its buffer once the chunk is handed on.
          chunks.push(chunk.slice());
          if (length === declared) complete();
        }
      }
      controller.enqueue(chunk);
    },
    cancel(reason) {
      giveUp("cut");
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
