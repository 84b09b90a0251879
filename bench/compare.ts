/**
 * A/B comparison for development: several sluice builds (or flag sets) against the raw proxy,
 * in many short alternating rounds, reporting each one's median req/s, its median ratio
 * to the raw proxy's run in the same round, and the proxy's CPU time per request (user +
 * system, from /proc): the steadiest of the three when other work shares the machine.
 *
 *   node_modules/.bin/bun bench/compare.ts <name>=[<VAR>=<value>@]<binary>[:<flags ...>] ...
 *
 * Environment: COMPARE_DURATION (default 3s), COMPARE_ROUNDS (default 5). Same pinning as
 * bench/proxy.ts: proxies on CPU 0, upstreams and wrk on CPU 1.
 */
import { join } from "node:path";
import {
  BUN, CONNECTIONS, LOAD_CPU, cpuSeconds, PROXY_CPU, descendants, extraPids, fmt, fmtMs, freePort, log, median, pin, printTable,
  runBench, seconds, start, waitHttp200, waitTcp, wrk,
} from "./lib.ts";

async function main(): Promise<number> {
  const duration = seconds("COMPARE_DURATION", 3);
  const rounds = Math.max(1, Number(process.env.COMPARE_ROUNDS ?? 5) | 0);
  const variants = process.argv.slice(2).map((spec) => {
    const [name, rest] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
    const [target, ...flags] = rest.split(/[:\s]+/).filter(Boolean);
    const at = target!.indexOf("@");
    const env = at < 0 ? {} : { [target!.slice(0, target!.indexOf("="))]: target!.slice(target!.indexOf("=") + 1, at) };
    return { name, binary: target!.slice(at + 1), flags, env };
  });
  const upstreamCmd = [BUN, join(import.meta.dir, "upstream.ts")];
  const urls: Record<string, string> = {};
  const pids: Record<string, number> = {};
  let firstTarget = 0;
  for (const v of variants) {
    const [httpPort, targetPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    firstTarget ||= targetPort;
    const p = start(v.name, [
      "taskset", "-c", PROXY_CPU, v.binary, "--http-host", "127.0.0.1", "--http-port", String(httpPort),
      "--target-port", String(targetPort), "--admin-listen", `127.0.0.1:${adminPort}`, "--shutdown-delay", "0",
      ...v.flags, "--", ...upstreamCmd,
    ], { env: v.env });
    await waitTcp(targetPort, p, 20_000, v.name);
    await waitHttp200(`http://127.0.0.1:${httpPort}/`, p, 20_000, v.name);
    for (const k of descendants(p.pid)) {
      extraPids.add(k);
      await pin(k, LOAD_CPU);
    }
    urls[v.name] = `http://127.0.0.1:${httpPort}/`;
    pids[v.name] = p.pid;
  }
  const rawPort = await freePort();
  const raw = start("raw", ["taskset", "-c", PROXY_CPU, BUN, join(import.meta.dir, "raw-proxy.ts"), String(rawPort), String(firstTarget)]);
  await waitHttp200(`http://127.0.0.1:${rawPort}/`, raw, 20_000, "raw");
  urls.raw = `http://127.0.0.1:${rawPort}/`;
  pids.raw = raw.pid;
  const names = Object.keys(urls);
  for (const n of names) await wrk(urls[n]!, 1); // warm-up
  const rps: Record<string, number[]> = {};
  const p99: Record<string, number[]> = {};
  const ratio: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    const round: Record<string, { rps: number; p99: number; cpuUs: number }> = {};
    for (const n of order) {
      const before = cpuSeconds(pids[n]!);
      const result = await wrk(urls[n]!, duration);
      round[n] = { ...result, cpuUs: ((cpuSeconds(pids[n]!) - before) / result.requests) * 1e6 };
    }
    for (const n of names) {
      (cpu[n] ??= []).push(round[n]!.cpuUs);
      (rps[n] ??= []).push(round[n]!.rps);
      (p99[n] ??= []).push(round[n]!.p99);
      (ratio[n] ??= []).push(round[n]!.rps / round.raw!.rps);
    }
    log(`round ${r + 1}: ${names.map((n) => `${n} ${fmt(round[n]!.rps)}`).join("  ")}`);
  }
  printTable([
    ["target", "req/s", "p99", "vs raw (median of rounds)", "CPU us/req", "vs raw"],
    ...names.map((n) => [
      n, fmt(median(rps[n]!)), fmtMs(median(p99[n]!)), median(ratio[n]!).toFixed(3),
      median(cpu[n]!).toFixed(1), (median(cpu.raw!) / median(cpu[n]!)).toFixed(3),
    ]),
  ]);
  log(`(${rounds} rounds of ${duration}s, wrk -c${CONNECTIONS})`);
  return 0;
}

await runBench(main);
