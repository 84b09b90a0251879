/**
 * Compression cost benchmark: a Hono app answering a 100 KiB HTML page, without the
 * compression middleware and with it (client accepting nothing, gzip, br, zstd), on Bun and
 * on Deno, in the same run.
 *
 *   node_modules/.bin/bun bench/compression.ts
 *
 * Environment:
 *   BENCH_DURATION  measured wrk run per configuration (default 5s)
 *   BENCH_WARMUP    warm-up run before each (default 1s)
 *   BENCH_RUNTIMES  which runtimes, comma-separated (default "bun,deno")
 *   BENCH_PIN       "0": do not pin the server to CPU 0 (when other pinned work shares the machine)
 *
 * Setup (2 cores, as bench/proxy.ts): the server (bench/compression-server.ts) on CPU 0, wrk
 * (1 thread, 50 connections) on CPU 1. Bytes are those of one response as sent (no client
 * decoding). "CPU/request" is the server's user + system time over the measured run divided
 * by the requests wrk completed: steadier than req/s when other work shares the machine.
 * A benchmark, not a test: it prints the table and exits 0 unless it could not run.
 */
import { join } from "node:path";
import {
  BUN, BenchError, CONNECTIONS, LOAD_CPU, PROXY_CPU, ROOT, type WrkResult,
  cpuSeconds, ensureWrk, fmt, fmtMs, freePort, log, parseWrk, pin, printTable, run, runBench, seconds, start, waitHttp200,
} from "./lib.ts";

const DURATION = seconds("BENCH_DURATION", 5);
const WARMUP = seconds("BENCH_WARMUP", 1);
const RUNTIMES = (process.env.BENCH_RUNTIMES ?? "bun,deno").split(",").map((s) => s.trim()).filter(Boolean);
const SERVER = join(ROOT, "bench/compression-server.ts");
const DENO = join(ROOT, "node_modules/.bin/deno");
const PIN = process.env.BENCH_PIN !== "0";

async function wrkWith(url: string, acceptEncoding: string | null, durationS: number): Promise<WrkResult> {
  const header = acceptEncoding === null ? [] : ["-H", `Accept-Encoding: ${acceptEncoding}`];
  const cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", `-c${CONNECTIONS}`, `-d${durationS}s`, "--latency", ...header, url];
  const r = await run(cmd, (durationS + 30) * 1000);
  if (r.code !== 0) throw new BenchError(`wrk exited ${r.code}: ${r.err.trim()}\n${r.out}`);
  return parseWrk(r.out);
}

/** One response's size and Content-Encoding as sent. */
async function probe(url: string, acceptEncoding: string | null): Promise<{ bytes: number; encoding: string }> {
  const headers: Record<string, string> = acceptEncoding === null ? {} : { "accept-encoding": acceptEncoding };
  const res = await fetch(url, { headers, decompress: false } as RequestInit);
  const bytes = (await res.arrayBuffer()).byteLength;
  return { bytes, encoding: res.headers.get("content-encoding") ?? "identity" };
}

async function main(): Promise<number> {
  await ensureWrk();
  const rows: string[][] = [["runtime / configuration", "Content-Encoding", "bytes/response", "req/s", "vs no middleware", "CPU/request", "p50", "p99", "errors"]];
  for (const runtime of RUNTIMES) {
    if (runtime !== "bun" && runtime !== "deno") throw new BenchError(`BENCH_RUNTIMES: unknown runtime ${runtime}`);
    const plainPort = await freePort();
    const compressedPort = await freePort();
    log(`${runtime}: ports ${plainPort} ${compressedPort}`);
    const command = runtime === "bun"
      ? [BUN, SERVER, String(plainPort), String(compressedPort)]
      : [DENO, "run", "--allow-all", "--unstable-net", SERVER, String(plainPort), String(compressedPort)];
    const server = start(`${runtime} server`, command);
    await waitHttp200(`http://127.0.0.1:${plainPort}/`, server, 30_000, `${runtime} server`);
    await waitHttp200(`http://127.0.0.1:${compressedPort}/`, server, 30_000, `${runtime} server`);
    if (PIN) await pin(server.pid, PROXY_CPU);
    const configurations: [string, number, string | null][] = [
      ["no middleware", plainPort, "gzip, deflate, br, zstd"],
      ["middleware, client accepts none", compressedPort, null],
      ["middleware, gzip", compressedPort, "gzip"],
      ["middleware, br", compressedPort, "br"],
      ["middleware, zstd", compressedPort, "zstd"],
    ];
    let baseline = Number.NaN;
    for (const [name, port, acceptEncoding] of configurations) {
      const url = `http://127.0.0.1:${port}/`;
      const { bytes, encoding } = await probe(url, acceptEncoding);
      if (acceptEncoding && !acceptEncoding.includes(",") && encoding !== acceptEncoding) {
        rows.push([`${runtime} / ${name}`, `${encoding} (${acceptEncoding} unavailable)`, "-", "-", "-", "-", "-", "-", "-"]);
        continue;
      }
      log(`${runtime} / ${name}: warm-up ${WARMUP}s, run ${DURATION}s`);
      await wrkWith(url, acceptEncoding, WARMUP);
      const cpuBefore = cpuSeconds(server.pid);
      const result = await wrkWith(url, acceptEncoding, DURATION);
      const cpuPerRequestUs = ((cpuSeconds(server.pid) - cpuBefore) / result.requests) * 1e6;
      if (name === "no middleware") baseline = result.rps;
      rows.push([
        `${runtime} / ${name}`,
        encoding,
        fmt(bytes),
        fmt(result.rps),
        `${fmt((result.rps / baseline) * 100)}%`,
        `${fmt(cpuPerRequestUs)} us`,
        fmtMs(result.p50),
        fmtMs(result.p99),
        String(result.errors),
      ]);
    }
  }
  log("");
  printTable(rows);
  return 0;
}

await runBench(main);
