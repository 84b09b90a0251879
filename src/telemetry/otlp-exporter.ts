/**
 * @module OtlpExporter: POSTs requests of spans already encoded as OTLP JSON (by the batch
 * processor) with the global fetch: no Node HTTP stack, the same code on Bun and Deno. The
 * body is bytes: Bun's fetch turns a string body into bytes at a higher cost (measured).
 */

import { type ExportResult, ExportResultCode } from "@opentelemetry/core";
import { parseHttpDate } from "../http-date.ts";

/** Spans counted once their export ended; sluice_spans_exported_total / _dropped_total read them. */
export interface SpanCounts {
  exported: number;
  dropped: number;
}

export interface OtlpExporterOptions {
  /** The full traces URL (".../v1/traces"). */
  url: string;
  /** Extra request headers (credentials, tenant ids). @default {} */
  headers?: Readonly<Record<string, string>>;
  /** Longest wait for one export request, response body included. @default 10000 */
  timeoutMs?: number;
  /** Where to count; pass one shared object to total across exporters. @default a new one */
  counts?: SpanCounts;
}

/** The longest a receiver's Retry-After keeps exports back: a typo there must not end tracing. */
const MAX_RETRY_AFTER_MS = 5 * 60_000;

/**
 * One export is one POST; a failed one (network error, timeout, non-2xx) is not retried and
 * its spans are counted as dropped. A 429 or 503 with Retry-After is obeyed: until then,
 * exports are dropped without a request (an overloaded receiver asked for less, not the same
 * again; the OTLP specification asks clients to honour it). The only timer is each request's
 * own timeout, cleared when the request ends: an idle exporter holds nothing, and after
 * shutdown() resolves no request is pending.
 */
export class OtlpExporter {
  static #live = 0;
  /** Exporters constructed and not yet shut down, in this process (a leak check). */
  static get live(): number {
    return OtlpExporter.#live;
  }

  readonly url: string;
  readonly counts: SpanCounts;
  /** The URL for messages: without user info or query, which may hold credentials. */
  readonly #where: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #pending = new Set<Promise<void>>();
  #shutDown = false;
  /** When a receiver's Retry-After ends (ms since the epoch); 0 when none holds. */
  #quietUntil = 0;

  constructor({ url, headers = {}, timeoutMs = 10_000, counts = { exported: 0, dropped: 0 } }: OtlpExporterOptions) {
    // Fail here, on the pool's build path, rather than at the first export.
    const protocol = URL.canParse(url) ? new URL(url).protocol : "";
    if (protocol !== "http:" && protocol !== "https:") {
      throw new TypeError(`Cannot export spans to "${url}": expected an http:// or https:// URL`);
    }
    this.url = url;
    const { origin, pathname } = new URL(url);
    this.#where = `${origin}${pathname}`;
    this.#headers = { ...headers, "content-type": "application/json" };
    this.#timeoutMs = timeoutMs;
    this.counts = counts;
    OtlpExporter.#live++;
  }

  /** Export requests still running. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Sends an ExportTraceServiceRequest already encoded as OTLP JSON, holding `count` spans;
   * resolves with the result, never rejects.
   */
  exportEncoded(body: Uint8Array<ArrayBuffer>, count: number): Promise<ExportResult> {
    if (this.#shutDown) {
      this.counts.dropped += count;
      return Promise.resolve({ code: ExportResultCode.FAILED, error: new Error("Cannot export spans: the exporter is shut down") });
    }
    if (this.#quietUntil > Date.now()) {
      this.counts.dropped += count;
      const until = new Date(this.#quietUntil).toISOString();
      return Promise.resolve({ code: ExportResultCode.FAILED, error: new Error(`OTLP receiver at ${this.#where} asked to wait until ${until} (Retry-After): spans dropped`) });
    }
    // Off the pending list before the result is handed on, so the caller sees it ended; a
    // throwing callback is the caller's bug and must not become an unhandled rejection
    // (fatal on Deno) nor stop forceFlush(). #send itself never rejects.
    const { promise, resolve } = Promise.withResolvers<ExportResult>();
    const request: Promise<void> = this.#send(body, count).then((result) => {
      this.#pending.delete(request);
      resolve(result);
    });
    this.#pending.add(request);
    return promise;
  }

  async #send(body: Uint8Array<ArrayBuffer>, count: number): Promise<ExportResult> {
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error(`OTLP export to ${this.#where} timed out after ${this.#timeoutMs}ms`)),
      this.#timeoutMs,
    );
    try {
      const response = await fetch(this.url, { method: "POST", headers: this.#headers, body, signal: abort.signal });
      // Read the body (under the same timeout) so the connection can be reused; bounded.
      const text = await answerText(response);
      if (!response.ok) {
        if (response.status === 429 || response.status === 503) this.#keepQuiet(response.headers.get("retry-after"));
        throw new OtlpAnswerError(`OTLP receiver at ${this.#where} answered ${response.status}: ${text.slice(0, 200)}`);
      }
      const rejected = Math.min(rejectedSpans(text), count);
      this.counts.exported += count - rejected;
      this.counts.dropped += rejected;
      return { code: ExportResultCode.SUCCESS };
    } catch (error) {
      this.counts.dropped += count;
      if (abort.signal.aborted) {
        const reason = abort.signal.reason;
        return { code: ExportResultCode.FAILED, error: reason instanceof Error ? reason : new Error(String(reason)) };
      }
      if (error instanceof OtlpAnswerError) return { code: ExportResultCode.FAILED, error };
      // The runtime's network errors do not say where ("Unable to connect", "Connection refused").
      const message = error instanceof Error ? error.message : String(error);
      return { code: ExportResultCode.FAILED, error: new Error(`OTLP export to ${this.#where} failed: ${message}`, { cause: error }) };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Holds exports back for a Retry-After: delay-seconds or an HTTP-date, at most MAX_RETRY_AFTER_MS. */
  #keepQuiet(retryAfter: string | null): void {
    if (retryAfter === null) return;
    const now = Date.now();
    const until = /^\s*\d+\s*$/.test(retryAfter) ? now + Number(retryAfter) * 1000 : parseHttpDate(retryAfter, now);
    if (until !== undefined && until > now) this.#quietUntil = Math.min(until, now + MAX_RETRY_AFTER_MS);
  }

  /** Resolves when every export started so far has ended (each is bounded by its timeout). */
  async forceFlush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }

  /** Refuses new exports, then waits for the running ones. */
  async shutdown(): Promise<void> {
    if (!this.#shutDown) {
      this.#shutDown = true;
      OtlpExporter.#live--;
    }
    await this.forceFlush();
  }
}

/**
 * The most of an answer that is read. An OTLP answer is a small message (a partialSuccess at
 * most); whatever the URL names may send far more, which would all be held in memory (a
 * 400 MiB answer took sluice from 45 to 535 MiB).
 */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The answer's text, up to MAX_ANSWER_BYTES; a longer one is cut there and its body cancelled. */
async function answerText(response: Response): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  while (bytes < MAX_ANSWER_BYTES) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    bytes += value.byteLength;
    text += decoder.decode(value, { stream: true });
  }
  reader.cancel().catch(() => {}); // closes the connection: the rest is never read
  return text;
}

/** A receiver's answer other than 2xx (its message names the receiver already). */
class OtlpAnswerError extends Error {}

/** A 2xx answer may still reject some spans (`partialSuccess`, OTLP 1.0). */
function rejectedSpans(body: string): number {
  if (!body.includes("rejectedSpans")) return 0;
  try {
    const rejected = Number((JSON.parse(body) as { partialSuccess?: { rejectedSpans?: unknown } }).partialSuccess?.rejectedSpans);
    return Number.isSafeInteger(rejected) && rejected > 0 ? rejected : 0;
  } catch {
    return 0;
  }
}
