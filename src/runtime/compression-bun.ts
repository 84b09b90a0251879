/**
 * @module Response-body compressors for Bun that flush after every chunk. Bun's
 * CompressionStream holds its output back until the body ends (measured on Bun 1.4.5, see
 * docs/runtime-notes.md), and Bun.* offers no streaming compressor, so these run on Bun's
 * native zlib, brotli and zstd (its node-compatible zlib, reached through
 * `process.getBuiltinModule`: sources under src/ import no `node:` module).
 */

import type { ContentEncoding } from "./types.ts";

type Zlib = typeof import("zlib");
type Compressor = ReturnType<Zlib["createGzip"]>;

/** Brotli's default quality (11) takes about 230 ms for 100 KiB of HTML; 5 takes about 1 ms. */
const BROTLI_QUALITY = 5;

export interface BunCompression {
  readonly compressionEncodings: readonly ContentEncoding[];
  compressionStream(encoding: ContentEncoding): ReadableWritablePair<Uint8Array, Uint8Array>;
}

/**
 * The codings of the Bun sluice ships with (1.4.5: its zlib has zstd and brotli), most
 * preferred first. Stated rather than probed: probing loads zlib, which costs about 1.5 MiB
 * of idle memory; it is loaded by the first body compressed.
 */
const BUN_ENCODINGS: readonly ContentEncoding[] = ["zstd", "br", "gzip"];

export function bunCompression(): BunCompression {
  let loaded: BunCompression | undefined;
  return {
    compressionEncodings: BUN_ENCODINGS,
    compressionStream: (encoding) => (loaded ??= loadCompression()).compressionStream(encoding),
  };
}

/** Each coding as a compressor factory; none when the zlib module is unavailable (then sluice does not compress). */
function loadCompression(): BunCompression {
  const zlib = process.getBuiltinModule?.("zlib");
  const makers: Partial<Record<ContentEncoding, () => Compressor>> = {};
  if (zlib) {
    const c = zlib.constants;
    // Every write is compressed with the flush mode given here, so its bytes come out whole.
    // Most preferred first: zstd costs the least CPU and is smaller than gzip, brotli is the
    // smallest and costs the most (bench/compression.ts, docs/compression.md).
    if (typeof zlib.createZstdCompress === "function") makers.zstd = () => zlib.createZstdCompress({ flush: c.ZSTD_e_flush });
    makers.br = () =>
      zlib.createBrotliCompress({ flush: c.BROTLI_OPERATION_FLUSH, params: { [c.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY } });
    makers.gzip = () => zlib.createGzip({ flush: c.Z_SYNC_FLUSH });
  }
  return {
    compressionEncodings: Object.keys(makers) as ContentEncoding[],
    compressionStream(encoding) {
      const make = makers[encoding];
      if (!make) throw new RangeError(`Cannot compress with ${encoding} on Bun: available are ${Object.keys(makers).join(", ") || "none"}`);
      return flushingStream(make());
    },
  };
}

/** A TransformStream over a zlib compressor: each chunk written comes out compressed and flushed before the next is taken. */
function flushingStream(compressor: Compressor): TransformStream<Uint8Array, Uint8Array> {
  let out!: TransformStreamDefaultController<Uint8Array>;
  let failure: unknown;
  compressor.on("data", (chunk: Uint8Array) => {
    try {
      out.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch {
      // The readable side is gone: the client went away while these bytes were being
      // compressed (seen under wrk while the last block was finishing). Thrown from an event
      // listener, this error would be uncaught and end the process: drop them, stop.
      compressor.destroy();
    }
  });
  compressor.on("error", (error) => (failure = error));
  const transformer = {
    start(controller: TransformStreamDefaultController<Uint8Array>) {
      out = controller;
    },
    transform(chunk: Uint8Array) {
      if (chunk.byteLength === 0) return;
      // The write callback runs after the flushed output has been emitted as "data".
      return new Promise<void>((resolve, reject) => compressor.write(chunk, (error) => (error ? reject(error) : resolve())));
    },
    flush() {
      if (failure !== undefined) throw failure;
      return new Promise<void>((resolve, reject) => {
        compressor.once("error", reject);
        compressor.once("end", resolve);
        compressor.once("close", resolve); // destroyed above: nobody reads any more
        compressor.end();
      });
    },
    // The readable side was cancelled (the client went away) between chunks. Bun 1.4.5 calls
    // this (the TypeScript DOM types do not know the member yet).
    cancel() {
      compressor.destroy();
    },
  };
  return new TransformStream<Uint8Array, Uint8Array>(transformer);
}
