/**
 * @module EncodingBatchProcessor: the span processor sluice's providers use. As the SDK's
 * BatchSpanProcessor it sends spans in batches (OTEL_BSP_* settings, one export at a time,
 * a bounded queue whose overflow is dropped and counted), but it encodes each span as OTLP
 * JSON text the moment it ends: the span's objects are garbage at once instead of living in
 * the queue until their batch goes out, which made every garbage collection slower (measured:
 * 17 us of collection per traced request with the SDK's processor, against 4 untraced).
 * The text is turned into the batch's bytes about twenty spans at a time.
 */

import { TraceFlags } from "@opentelemetry/api";
import { type ExportResult, ExportResultCode, type InstrumentationScope } from "@opentelemetry/core";
import type { Resource } from "@opentelemetry/resources";
import { log } from "../log.ts";
import type { OtlpExporter, SpanCounts } from "./otlp-exporter.ts";
import { type EncodableSpan, traceRequestClosing, traceRequestOpening, writeSpan } from "./otlp-json.ts";
import type { BatchConfig } from "./tracing-config.ts";

const encoder = new TextEncoder();

/**
 * Spans as an ExportTraceServiceRequest in the making: the request's opening, then the spans
 * encoded one after the other (comma-separated); the closing is added when it is sealed.
 */
interface Batch {
  bytes: Uint8Array<ArrayBuffer>;
  length: number;
  count: number;
}

/** A batch's first buffer; a buffer that had to grow is reused, with its size, for later batches. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/**
 * The text of spans that ended is gathered as parts and written into the batch's bytes once
 * this many parts are waiting (about twenty spans): one join and one encode for them all
 * instead of one each, which per span cost more under load than in a loop.
 */
const PARTS_PER_WRITE = 1024;

export class EncodingBatchProcessor {
  readonly #exporter: OtlpExporter;
  readonly #config: BatchConfig;
  readonly #counts: SpanCounts;
  /** Every batch's opening and closing: one provider's spans share the resource and the scope. */
  readonly #opening: string;
  readonly #closing: string;
  /** The batch being filled. */
  #filling: Batch | undefined;
  /** Batches sealed and waiting for the export in progress. */
  #sealed: Batch[] = [];
  /** Spans accepted and not yet handed to the exporter (OTEL_BSP_MAX_QUEUE_SIZE bounds them). */
  #queued = 0;
  #exporting: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #shutDown = false;
  /** Buffers of exported batches, for the next ones (large ArrayBuffers make the garbage collector run sooner). */
  #spare: Uint8Array<ArrayBuffer>[] = [];
  /** Text of spans in the batch being filled, not yet written into its bytes. */
  readonly #parts: string[] = [];
  /** Spans lost by exports that failed since the last one that succeeded (undefined: none failed). */
  #failedSpans: number | undefined;

  constructor(exporter: OtlpExporter, config: BatchConfig, counts: SpanCounts, resource: Resource, scope: InstrumentationScope) {
    this.#exporter = exporter;
    this.#config = config;
    this.#counts = counts;
    this.#opening = traceRequestOpening(resource, scope);
    this.#closing = traceRequestClosing(resource, scope);
  }

  /**
   * Spans accepted and not yet exported or counted as dropped: those waiting for a batch or an
   * export, and those of the export in progress. What a flush cut short leaves undelivered.
   */
  get unexported(): number {
    return this.#queued;
  }

  /** Takes an ended span. */
  onEnd(span: EncodableSpan): void {
    if ((span.context.traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.#shutDown || this.#queued >= this.#config.maxQueueSize) {
      this.#counts.dropped++;
      return;
    }
    const batch = (this.#filling ??= this.#newBatch());
    writeSpan(this.#parts, span, batch.count === 0 ? "" : ",");
    if (this.#parts.length >= PARTS_PER_WRITE) this.#writeParts(batch);
    batch.count++;
    this.#queued++;
    if (batch.count >= this.#config.maxExportBatchSize) this.#seal();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#seal(), this.#config.scheduledDelayMs);
      // As the SDK's processor: a partial batch does not keep the process alive (the stop
      // sequence flushes the providers itself).
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Exports every span accepted so far; resolves when those exports have ended. */
  async forceFlush(): Promise<void> {
    this.#seal();
    while (this.#exporting) await this.#exporting;
  }

  /** Flushes, then refuses new spans (counted as dropped) and shuts the exporter down. */
  async shutdown(): Promise<void> {
    if (this.#shutDown) return;
    await this.forceFlush();
    this.#shutDown = true;
    await this.#exporter.shutdown();
  }

  #newBatch(): Batch {
    const batch = { bytes: this.#spare.pop() ?? new Uint8Array(FIRST_BUFFER_BYTES), length: 0, count: 0 };
    write(batch, this.#opening);
    return batch;
  }

  /** Moves the batch being filled to the export queue, and starts exporting if idle. */
  #seal(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#filling === undefined) return;
    this.#writeParts(this.#filling);
    write(this.#filling, this.#closing);
    this.#sealed.push(this.#filling);
    this.#filling = undefined;
    this.#exporting ??= this.#exportSealed();
  }

  #writeParts(batch: Batch): void {
    write(batch, this.#parts.join(""));
    this.#parts.length = 0;
  }

  /** One export at a time, in order; each batch's spans leave the queue once it ended. */
  async #exportSealed(): Promise<void> {
    try {
      for (let batch = this.#sealed.shift(); batch !== undefined; batch = this.#sealed.shift()) {
        // Counts the spans exported or dropped; never rejects.
        const result = await this.#exporter.exportEncoded(batch.bytes.subarray(0, batch.length), batch.count);
        this.#queued -= batch.count;
        this.#report(result, batch.count);
        // Reused only after a completed export: a timed-out one may still be sending it.
        if (result.code === ExportResultCode.SUCCESS && this.#spare.length < 2) this.#spare.push(batch.bytes);
      }
    } finally {
      this.#exporting = undefined;
    }
  }

  /**
   * Logs the first failed export of a run of failures (a wrong URL, credential or a collector
   * that is down would otherwise only show in sluice_spans_dropped_total), and the first
   * success after it: two records per outage, however many exports fail.
   */
  #report(result: ExportResult, spans: number): void {
    if (result.code !== ExportResultCode.SUCCESS) {
      if (this.#failedSpans === undefined) {
        log.lifecycle.warn("Spans could not be exported: {error}; until an export succeeds, failures are only counted", {
          event: "tracing.export.failed",
          error: result.error?.message ?? "unknown error",
          spans,
        });
        this.#failedSpans = 0;
      }
      this.#failedSpans += spans;
    } else if (this.#failedSpans !== undefined) {
      log.lifecycle.info("Spans are exported again; {spans} were lost to failed exports", { event: "tracing.export.recovered", spans: this.#failedSpans });
      this.#failedSpans = undefined;
    }
  }
}

/** Encodes `text` at the end of the batch, growing its buffer when needed. */
function write(batch: Batch, text: string): void {
  const room = text.length * 3; // UTF-8 needs at most 3 bytes per UTF-16 unit
  if (batch.length + room > batch.bytes.byteLength) {
    const larger = new Uint8Array(Math.max(batch.bytes.byteLength * 2, batch.length + room));
    larger.set(batch.bytes.subarray(0, batch.length));
    batch.bytes = larger;
  }
  batch.length += encoder.encodeInto(text, batch.bytes.subarray(batch.length)).written;
}
