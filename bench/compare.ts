/**
 * A/B comparison for development: several sluice builds (or flag sets) against the raw proxy,
 * in alternating rounds, reporting each one's median req/s, p99, CPU time per request (user +
 * system, from /proc) and the medians of its per-round ratios to the first variant. Every
 * round starts a fresh process per variant: two processes of the same binary differ by
 * several percent here, and the machine's speed drifts over minutes, so only ratios taken
 * within a round, over several rounds, are worth reading (docs/runtime-notes.md).
 *
 *   node_modules/.bin/bun bench/compare.ts <name>=[<VAR>=<value>@]<binary>[:<flags ...>] ...
 *
 * A variant's variable reaches the proxy, not sluice's child (the upstream). The name "raw"
 * with the binary "raw" runs bench/raw-proxy.ts. Environment: COMPARE_DURATION
 * (default 3s), COMPARE_WARMUP (default 1s), COMPARE_ROUNDS (default 8). Same pinning as
 * bench/proxy.ts: proxies on CPU 0, upstreams and wrk on CPU 1.
 */
import { join } from "node:path";
import {
  BUN, LOAD_CPU, cpuSeconds, PROXY_CPU, descendants, extraPids, fmt, fmtMs, freePort, log, median, pin, printTable,
  runBench, seconds, start, stopProcess, waitHttp200, waitTcp, wrk,
} from "./lib.ts";

interface Variant {
  name: string;
  /** A sluice binary, or "raw" for bench/raw-proxy.ts. */
  binary: string;
  flags: string[];
  env: Record<string, string>;
}

function parseVariant(spec: string): Variant {
  const [name, rest] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
  // The variable's value may hold ":" (a URL): split the flags off only after the "@".
  const at = rest.indexOf("@");
  const setting = at < 0 ? "" : rest.slice(0, at);
  const [binary, ...flags] = rest.slice(at + 1).split(/[:\s]+/).filter(Boolean);
  const env = at < 0 ? {} : { [setting.slice(0, setting.indexOf("="))]: setting.slice(setting.indexOf("=") + 1) };
  return { name, binary: binary!, flags, env };
}

/**
 * A variant's variables are for the proxy alone: sluice's child would inherit them, and a
 * tuning variable (MIMALLOC_*, BUN_JSC_*) would change the upstream, which shares wrk's CPU.
 */
function forProxyOnly(env: Record<string, string>): string[] {
  const names = Object.keys(env);
  return names.length === 0 ? [] : ["env", ...names.flatMap((name) => ["-u", name])];
}

async function main(): Promise<number> {
  const duration = seconds("COMPARE_DURATION", 3);
  const warmup = seconds("COMPARE_WARMUP", 1);
  const rounds = Math.max(1, Number(process.env.COMPARE_ROUNDS ?? 8) | 0);
  const variants = process.argv.slice(2).map(parseVariant);
  if (variants.length === 0) throw new Error("usage: bench/compare.ts <name>=[<VAR>=<value>@]<binary>[:<flags ...>] ...");
  const upstreamCmd = [BUN, join(import.meta.dir, "upstream.ts")];
  // The raw proxy's upstream (sluice variants start their own as their child).
  const rawTarget = await freePort();
  const upstream = start("upstream", ["taskset", "-c", LOAD_CPU, ...upstreamCmd], { env: { PORT: String(rawTarget) } });
  await waitTcp(rawTarget, upstream, 20_000, "bench/upstream.ts");

  const rps: Record<string, number[]> = {};
  const p99: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
      const port = await freePort();
      const cmd = v.binary === "raw"
        ? [BUN, join(import.meta.dir, "raw-proxy.ts"), String(port), String(rawTarget)]
        : [v.binary, "--http-host", "127.0.0.1", "--http-port", String(port), "--target-port", String(await freePort()),
          "--admin-listen", "off", "--shutdown-delay", "0", ...v.flags, "--", ...forProxyOnly(v.env), ...upstreamCmd];
      const p = start(v.name, ["taskset", "-c", PROXY_CPU, ...cmd], { env: v.env });
      const url = `http://127.0.0.1:${port}/`;
      await waitHttp200(url, p, 20_000, v.name);
      for (const k of descendants(p.pid)) {
        extraPids.add(k);
        await pin(k, LOAD_CPU);
      }
      await wrk(url, warmup);
      const before = cpuSeconds(p.pid);
      const result = await wrk(url, duration);
      (rps[v.name] ??= []).push(result.rps);
      (p99[v.name] ??= []).push(result.p99);
      (cpu[v.name] ??= []).push(((cpuSeconds(p.pid) - before) / result.requests) * 1e6);
      await stopProcess(p, 10_000);
    }
    log(`round ${r + 1}: ${variants.map((v) => `${v.name} ${fmt(rps[v.name]!.at(-1)!)} req/s`).join("  ")}`);
  }
  const first = variants[0]!.name;
  const ratio = (values: Record<string, number[]>, name: string) => median(values[name]!.map((x, i) => x / values[first]![i]!));
  printTable([
    ["variant", "req/s", "p99", `req/s vs ${first}`, "CPU us/req", `CPU vs ${first}`],
    ...variants.map(({ name }) => [
      name, fmt(median(rps[name]!)), fmtMs(median(p99[name]!)), ratio(rps, name).toFixed(3),
      median(cpu[name]!).toFixed(1), ratio(cpu, name).toFixed(3),
    ]),
  ]);
  log(`(${rounds} rounds of ${duration}s after ${warmup}s warm-up, a fresh process per variant per round; ratios are medians of the per-round ratios)`);
  return 0;
}

await runBench(main);
