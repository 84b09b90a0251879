/**
 * Response cache benchmark: requests/s for cache hits vs misses, through the same front
 * (sluice's Server and the pipeline of src/app.ts with default options), in the same run.
 *
 *   node_modules/.bin/bun bench/cache.ts
 *
 * Environment:
 *   BENCH_DURATION  measured wrk run length (default 5s)
 *   BENCH_WARMUP    warm-up run before each measured run (default 1s)
 *   BENCH_ROUNDS    rounds of hit/miss (default 3)
 *
 * Setup (2 cores): the front runs on CPU 0; the upstream app and wrk on CPU 1. The upstream
 * renders a 4 KiB page per request (a little work, as an app would); /hit is marked
 * `public, max-age=3600` (served from the cache after the first request), /miss `private`
 * (forwarded every time). It is a benchmark, not a test: it prints figures and the ratio and
 * exits 0 unless it could not run.
 */
import { buildApp } from "../src/app.ts";
import { ResponseCache } from "../src/cache/response-cache.ts";
import { resolveConfig } from "../src/config.ts";
import { prepareFiles } from "../src/files/prepare-files.ts";
import { Readiness } from "../src/readiness.ts";
import { Metrics } from "../src/telemetry/metrics.ts";
import { bunRuntime } from "../src/runtime/bun.ts";
import { Server } from "../src/server.ts";
import { Http1Client } from "../src/upstream/http1-client.ts";
import {
  BUN, BenchError, CONNECTIONS, LOAD_CPU, PROXY_CPU, ensureWrk, fmt, fmtMs, fmtRatio, freePort, log, median,
  pin, printTable, runBench, seconds, start, waitHttp200, wrk,
} from "./lib.ts";

const role = process.argv[2];
if (role === "upstream") await upstream(Number(process.env.PORT));
else if (role === "front") await front(Number(process.env.PORT), Number(process.env.UPSTREAM_PORT));
else await runBench(main);

/** The app: renders a page per request, cacheable or not by path. */
async function upstream(port: number): Promise<void> {
  const rows = Array.from({ length: 40 }, (_, i) => ({ id: i, name: `item ${i}`, price: (i * 7.3).toFixed(2) }));
  Bun.serve({
    hostname: "127.0.0.1",
    port,
    fetch(request) {
      const path = new URL(request.url).pathname;
      let html = "<!doctype html><table>";
      for (const row of rows) html += `<tr><td>${row.id}</td><td>${row.name.toUpperCase()}</td><td>${row.price}</td></tr>`;
      html += `</table><!-- ${"x".repeat(Math.max(0, 4096 - html.length - 20))} -->\n`;
      return new Response(html, {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "cache-control": path === "/hit" ? "public, max-age=3600" : "private, max-age=0",
        },
      });
    },
  });
  await new Promise(() => {}); // served until the benchmark stops it
}

/** What sluice runs: its Server and the pipeline of src/app.ts with the default options. */
async function front(port: number, upstreamPort: number): Promise<void> {
  const resolved = resolveConfig({}, { SLUICE_TARGET_PORT: String(upstreamPort), SLUICE_ACCESS_LOG: "false" }, []);
  const config = { ...resolved, files: await prepareFiles(resolved, bunRuntime) };
  const readiness = new Readiness();
  readiness.setChild("ready");
  const upstream = new Http1Client({ connect: bunRuntime.connectTcp });
  const pipeline = buildApp(config, {
    readiness,
    metrics: new Metrics(),
    upstreamFetch: (url, init) => upstream.fetch(url, init),
    upstreamConnect: bunRuntime.connectTcp,
    compressors: bunRuntime,
    files: bunRuntime,
    http: bunRuntime,
    responseCache: new ResponseCache({ maxSize: config.cacheSize, maxItemSize: config.maxCacheItemSize }),
  });
  const server = new Server(bunRuntime, pipeline);
  await server.start("127.0.0.1", port);
  await new Promise(() => {});
}

async function main(): Promise<number> {
  const duration = seconds("BENCH_DURATION", 5);
  const warmup = seconds("BENCH_WARMUP", 1);
  const rounds = Math.min(10, Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) || 3));
  await ensureWrk();
  const [upstreamPort, frontPort] = [await freePort(), await freePort()];
  const app = start("upstream", [BUN, import.meta.path, "upstream"], { env: { PORT: String(upstreamPort) } });
  const proxyProcess = start("front", [BUN, import.meta.path, "front"], { env: { PORT: String(frontPort), UPSTREAM_PORT: String(upstreamPort) } });
  await pin(app.pid, LOAD_CPU);
  await pin(proxyProcess.pid, PROXY_CPU);
  const base = `http://127.0.0.1:${frontPort}`;
  await waitHttp200(`http://127.0.0.1:${upstreamPort}/miss`, app, 10_000, "upstream");
  await waitHttp200(`${base}/miss`, proxyProcess, 10_000, "front");

  // The paths do what they should before anything is measured.
  const xCache = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    await r.arrayBuffer();
    return r.headers.get("x-cache");
  };
  const seen = [await xCache("/hit"), await xCache("/hit"), await xCache("/miss"), await xCache("/miss")];
  if (seen.join() !== "miss,hit,miss,miss") throw new BenchError(`unexpected X-Cache sequence ${seen.join()}`);

  log(`load: wrk -t1 -c${CONNECTIONS} -d${duration}s, ${warmup}s warm-up before each, ${rounds} rounds; front on cpu ${PROXY_CPU}, upstream and wrk on cpu ${LOAD_CPU}`);
  const results = { hit: [] as number[], miss: [] as number[], hitP99: [] as number[], missP99: [] as number[] };
  for (let round = 1; round <= rounds; round++) {
    for (const kind of ["hit", "miss"] as const) {
      await wrk(`${base}/${kind}`, warmup);
      const r = await wrk(`${base}/${kind}`, duration);
      if (r.errors > 0 || r.non2xx > 0) throw new BenchError(`${kind}: ${r.errors} errors, ${r.non2xx} non-2xx (${r.socketErrors})`);
      results[kind].push(r.rps);
      results[kind === "hit" ? "hitP99" : "missP99"].push(r.p99);
      log(`  round ${round} ${kind}: ${fmt(r.rps)} req/s, p99 ${fmtMs(r.p99)}`);
    }
  }
  const hit = median(results.hit);
  const miss = median(results.miss);
  log("");
  printTable([
    ["path", "req/s (median)", "p99 (median)"],
    ["/hit (from the cache)", fmt(hit), fmtMs(median(results.hitP99))],
    ["/miss (to the upstream)", fmt(miss), fmtMs(median(results.missP99))],
  ]);
  log(`\nhits / misses: ${fmtRatio(hit / miss)} ${hit > miss ? "(hits are faster)" : "(HITS ARE NOT FASTER)"}`);
  return 0;
}
