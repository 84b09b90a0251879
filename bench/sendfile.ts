/**
 * File serving benchmark, through the sluice binary in the same run:
 *   - X-Sendfile: the app names a 10 MiB file in X-Sendfile and sluice sends it, against the
 *     app sending the same file itself through sluice;
 *   - static files: sluice answering a 100 KiB asset from --public-dir, against the app
 *     serving the same asset through sluice.
 *
 *   node_modules/.bin/bun bench/sendfile.ts
 *
 * Environment:
 *   BENCH_DURATION  measured wrk run per path (default 5s)
 *   BENCH_WARMUP    warm-up run before each (default 1s)
 *   BENCH_ROUNDS    rounds over the four paths (default 3)
 *
 * Setup (2 cores, as bench/proxy.ts): sluice on CPU 0; its child (this file, role "upstream",
 * serving files with Bun.file) and wrk (1 thread, 50 connections, no Accept-Encoding, so
 * nothing is compressed) on CPU 1. "CPU/request" is user + system time over the measured run
 * divided by the requests wrk completed, for sluice and for the app. A benchmark, not a test:
 * it prints figures and the ratios and exits 0 unless it could not run.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BUN, BenchError, CONNECTIONS, LOAD_CPU, PROXY_CPU, cpuSeconds, ensureWrk, fmt, fmtMs, fmtRatio, freePort, log, median,
  prepareSluice, printTable, runBench, seconds, startSluice, wrk,
} from "./lib.ts";

const BIG_BYTES = 10 * 1024 * 1024;
const ASSET_BYTES = 100 * 1024;
const ASSET = "assets/application-3b4c5d6e.js";

/** The app: names the big file in X-Sendfile, or sends a file itself. */
async function upstream(port: number, dir: string): Promise<void> {
  Bun.serve({
    hostname: "127.0.0.1",
    port,
    fetch(request) {
      switch (new URL(request.url).pathname) {
        case "/sendfile":
          return new Response(null, { headers: { "x-sendfile": join(dir, "big.bin"), "content-type": "application/octet-stream" } });
        case "/self":
          return new Response(Bun.file(join(dir, "big.bin")));
        case "/asset-self":
          return new Response(Bun.file(join(dir, "public", ASSET)));
        default:
          return new Response("ok\n");
      }
    },
  });
  await new Promise(() => {}); // served until the benchmark stops it
}

interface Path {
  label: string;
  path: string;
  bytes: number;
}

const PATHS: Path[] = [
  { label: "10 MiB, X-Sendfile (sluice sends it)", path: "/sendfile", bytes: BIG_BYTES },
  { label: "10 MiB, the app sends it", path: "/self", bytes: BIG_BYTES },
  { label: "100 KiB asset, --public-dir", path: `/${ASSET}`, bytes: ASSET_BYTES },
  { label: "100 KiB asset, the app serves it", path: "/asset-self", bytes: ASSET_BYTES },
];

/** Each path answers 200 with the whole file, as sluice sends it, before anything is measured. */
async function checkPaths(base: string): Promise<void> {
  for (const { path, bytes } of PATHS) {
    const response = await fetch(`${base}${path}`, { headers: { "accept-encoding": "identity" } });
    const length = (await response.arrayBuffer()).byteLength;
    if (response.status !== 200 || length !== bytes || response.headers.has("x-sendfile")) {
      throw new BenchError(`${path}: status ${response.status}, ${length} bytes, X-Sendfile ${response.headers.get("x-sendfile")}`);
    }
  }
}

async function main(): Promise<number> {
  const duration = seconds("BENCH_DURATION", 5);
  const warmup = seconds("BENCH_WARMUP", 1);
  const rounds = Math.min(10, Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) || 3));
  const prepared = await prepareSluice();
  if (!prepared.ok) throw new BenchError(prepared.reason);
  await ensureWrk();
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-files-"));
  try {
    mkdirSync(join(dir, "public/assets"), { recursive: true });
    writeFileSync(join(dir, "big.bin"), randomBytes(BIG_BYTES));
    writeFileSync(join(dir, "public", ASSET), randomBytes(ASSET_BYTES / 2).toString("hex"));
    const [httpPort, targetPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    const sluice = await startSluice({
      httpPort,
      targetPort,
      adminPort,
      upstreamCmd: [BUN, import.meta.path, "upstream"],
      extraArgs: ["--x-sendfile-dirs", dir, "--public-dir", join(dir, "public"), "--access-log=false"],
      env: { FILES_DIR: dir },
      stderrFile: join(dir, "sluice.stderr"),
    });
    const base = `http://127.0.0.1:${httpPort}`;
    await checkPaths(base);
    log(`sluice ${prepared.version}`);
    log(`load: wrk -t1 -c${CONNECTIONS} -d${duration}s, ${warmup}s warm-up before each, ${rounds} rounds; sluice on cpu ${PROXY_CPU}, app and wrk on cpu ${LOAD_CPU}`);
    const results = new Map(PATHS.map((p) => [p.path, { rps: [] as number[], p99: [] as number[], sluiceCpu: [] as number[], appCpu: [] as number[] }]));
    for (let round = 1; round <= rounds; round++) {
      for (const { path } of PATHS) {
        await wrk(`${base}${path}`, warmup);
        const [sluiceBefore, appBefore] = [cpuSeconds(sluice.proc.pid), cpuSeconds(sluice.upstreamPid)];
        const r = await wrk(`${base}${path}`, duration);
        if (r.errors > 0) throw new BenchError(`${path}: ${r.errors} errors, ${r.non2xx} non-2xx (${r.socketErrors})`);
        const result = results.get(path)!;
        result.rps.push(r.rps);
        result.p99.push(r.p99);
        result.sluiceCpu.push(((cpuSeconds(sluice.proc.pid) - sluiceBefore) / r.requests) * 1e6);
        result.appCpu.push(((cpuSeconds(sluice.upstreamPid) - appBefore) / r.requests) * 1e6);
        log(`  round ${round} ${path}: ${fmt(r.rps)} req/s, p99 ${fmtMs(r.p99)}`);
      }
    }
    const rps = (path: string) => median(results.get(path)!.rps);
    log("");
    printTable([
      ["path", "req/s", "MiB/s", "p99", "sluice CPU/request", "app CPU/request"],
      ...PATHS.map(({ label, path, bytes }) => {
        const r = results.get(path)!;
        return [label, fmt(rps(path)), fmt((rps(path) * bytes) / 1024 / 1024), fmtMs(median(r.p99)), `${fmt(median(r.sluiceCpu))} us`, `${fmt(median(r.appCpu))} us`];
      }),
    ]);
    log(`\nX-Sendfile / the app sending the file: ${fmtRatio(rps("/sendfile") / rps("/self"))}`);
    log(`--public-dir / the app serving the asset: ${fmtRatio(rps(`/${ASSET}`) / rps("/asset-self"))}`);
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "upstream") await upstream(Number(process.env.PORT), process.env.FILES_DIR!);
else await runBench(main);
