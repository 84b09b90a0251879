/** @module Exchange: one request's record, from arrival to the last byte of its response. */

import type { ChildTarget } from "./child-target.ts";
import type { HeaderFields } from "./upstream/http1-client.ts";

/** How an exchange ended. */
export type Outcome =
  | "complete" // the response body was fully sent
  | "client-cancel" // the client went away first (logged as 499)
  | "aborted" // sluice cut it at the drain deadline or a fast stop
  | "error"; // the upstream body failed midway

/** Why an exchange's signal was aborted; the upstream request and the response body stop. */
export type AbortReason =
  | "client-cancel" // the client disconnected
  | "aborted" // sluice cut it (drain deadline, fast stop)
  | "upstream-timeout" // no response headers within --upstream-timeout
  | "body-too-large" // the request body grew past --max-request-body
  | "body-timeout" // the client paused its request body longer than --body-timeout
  | "body-malformed"; // the client's request body could not be read (its chunked framing was bad)

export type EndListener = (exchange: Exchange) => void;

/**
 * The status recorded for an exchange whose connection sluice cut before any answer went out
 * (nginx's code for a connection closed without a response), so that the access record and
 * the metrics show what the client saw rather than the 503 it never got.
 */
export const NO_RESPONSE_STATUS = 444;

/**
 * The exchange's server span, set by the tracing middleware when tracing is on (see
 * middleware/tracing.ts). An interface, so that nothing outside the tracing modules loads
 * OpenTelemetry.
 */
export interface ExchangeTrace {
  /** True when the server span is recorded: it ends at the response's last byte, so its body is followed. */
  readonly recording: boolean;
  /**
   * Puts the trace context into the upstream request's header fields, and starts the upstream
   * call's client span when the server span is recorded.
   */
  startUpstream(method: string, url: string, fields: HeaderFields): UpstreamTrace | undefined;
}

/** The client span of the upstream call, from sending to the response head. */
export interface UpstreamTrace {
  answered(status: number): void;
  failed(errorType: string): void;
  end(): void;
}

/**
 * Everything the pipeline learns about one request, shared by the server (in-flight
 * registry, drain), the middlewares (access log, metrics) and the proxy. Ended exactly once.
 */
export class Exchange {
  readonly startedAt = performance.now();
  readonly startedAtEpochMs = Date.now();
  /** Why the exchange was aborted, once it was. */
  #abortReason: AbortReason | undefined;
  /**
   * The exchange's AbortSignal, made when first asked for: most exchanges never need one
   * (the upstream request listens to the exchange itself, see addEventListener).
   */
  #abort: AbortController | undefined;
  /** The upstream request's abort listener (at most one at a time). */
  #onAbort: (() => void) | undefined;
  /** True once watchClient() ran: the client's disconnect aborts the exchange. */
  watchingClient = false;
  requestId = "";
  status = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Time from sending upstream to receiving its response headers, when there was one. */
  upstreamMs: number | undefined;
  /** Why the upstream request failed (502), for the access log. */
  upstreamError: string | undefined;
  /** Why sluice refused the request itself (400, 501), naming the value, for the access log. */
  rejected: string | undefined;
  outcome: Outcome | undefined;
  trace: ExchangeTrace | undefined;
  /** The child the request went to, once it went (a rolling restart waits for the old child's). */
  child: ChildTarget | undefined;
  #onEnd: EndListener;

  constructor(readonly request: Request, readonly clientAddress: string, onEnd: EndListener) {
    this.#onEnd = onEnd;
  }

  /**
   * From now on, aborts the exchange ("client-cancel") as soon as the client disconnects,
   * at once if it already has. The request's signal is not even read before: making it
   * costs about 5% of throughput on Bun, and both runtimes report a disconnect that came
   * before the first read (Bun at once, Deno within milliseconds). So exchanges answered
   * quickly never touch it: the pipeline calls this for those that wait (held, or a slow
   * upstream).
   */
  watchClient(): void {
    if (this.watchingClient) return;
    this.watchingClient = true;
    const client = this.request.signal;
    if (client.aborted) this.abort("client-cancel");
    else client.addEventListener("abort", () => this.abort("client-cancel"), { once: true });
  }

  /** True when the client has disconnected; the exchange is then aborted ("client-cancel") if it was not already. */
  clientGone(): boolean {
    if (!this.request.signal.aborted) return false;
    this.abort("client-cancel");
    return true;
  }

  /** Aborted for any AbortReason: one signal per exchange, not AbortSignal.any over several. */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#abortReason !== undefined) this.#abort.abort(this.#abortReason);
    }
    return this.#abort.signal;
  }

  get ended(): boolean {
    return this.outcome !== undefined;
  }

  /** Why the exchange was aborted, if it was. */
  get abortReason(): AbortReason | undefined {
    return this.#abortReason;
  }

  abort(reason: AbortReason): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    this.#abort?.abort(reason);
    this.#onAbort?.();
  }

  // The exchange as the upstream request's abort signal (UpstreamInit.signal), without an
  // AbortController and its event listeners per request: its aborted, reason and one listener.

  get aborted(): boolean {
    return this.#abortReason !== undefined;
  }

  get reason(): AbortReason | undefined {
    return this.#abortReason;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    this.#onAbort = listener;
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    if (this.#onAbort === listener) this.#onAbort = undefined;
  }

  end(outcome: Outcome): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome;
    this.#onEnd(this);
  }

  /** Milliseconds since the request arrived. */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }
}
