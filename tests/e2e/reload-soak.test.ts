/**
 * @module The reload soak: 1,000 SIGHUP reloads against a running sluice while requests
 * flow, with tracing on. Nothing may fail, no tracer provider may be built or left behind,
 * file descriptors and memory come back to their baseline, and the process still stops
 * promptly and cleanly afterwards. Then the same run from source with an entry that does not
 * call exit() at the end: the process must end by itself, so no timer or socket leaked.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { envName, OPTIONS } from "../../src/config.ts";
import { type Receiver, startReceiver } from "../fixtures/otlp-receiver.ts";
import { BUN, DENO, openFds, readMetrics, ROOT, rssKiB, type Sluice, startSluice, type Target, TARGETS, tempDir, until } from "../harness.ts";

/** SLUICE_* and OTEL_* variables inherited from the shell would change what these tests see. */
const CLEAN_ENV: Record<string, string> = {
  ...Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""])),
  ...Object.fromEntries(Object.keys(process.env).filter((name) => name.startsWith("OTEL_")).map((name) => [name, ""])),
};

const RELOADS = 1000;

const receivers: Receiver[] = [];
afterEach(() => {
  for (const receiver of receivers.splice(0)) receiver.stop();
});

interface Load {
  readonly done: number;
  readonly failures: string[];
  stop(): Promise<void>;
}

/**
 * `workers` clients sending requests back to back until stopped (at most 100,000 each): plain,
 * echoed, streamed (observed to the last byte) and slow ones (in flight across reloads).
 */
function startLoad(sluice: Sluice, workers: number): Load {
  let stopped = false;
  const state = { done: 0, failures: [] as string[] };
  const paths = ["/", "/echo", "/stream?chunks=2&gap=2", "/slow?ms=20"];
  const expected = (path: string, body: string) =>
    path === "/" ? body.length === 1024 : path.startsWith("/stream") ? body === "chunk 1\nchunk 2\n" : path === "/slow?ms=20" ? body === "slow 20\n" : body.startsWith("{");
  const worker = async (w: number) => {
    for (let i = 0; i < 100_000 && !stopped; i++) {
      const path = paths[(i + w) % paths.length]!;
      try {
        const response = await fetch(`${sluice.url}${path}`);
        const body = await response.text();
        if (response.status !== 200 || !expected(path, body)) state.failures.push(`${path}: ${response.status} ${body.slice(0, 80)}`);
      } catch (error) {
        state.failures.push(`${path}: ${String(error)}`);
      }
      state.done++;
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    get done() {
      return state.done;
    },
    failures: state.failures,
    async stop() {
      stopped = true;
      await running;
    },
  };
}

/**
 * sluice started with tracing on (exporting to a fresh receiver) and a config file that every
 * SIGHUP re-reads unchanged, with helpers to send reloads and wait for them.
 */
async function startSoak(target: Target) {
  const otlp = startReceiver();
  receivers.push(otlp);
  const path = join(tempDir(), "sluice.toml");
  writeFileSync(
    path,
    ['shutdown-delay = "0s"', 'drain-timeout = "10s"', `OTEL_EXPORTER_OTLP_ENDPOINT = "${otlp.url}"`, 'OTEL_BSP_SCHEDULE_DELAY = "200"', ""].join("\n"),
  );
  const sluice = await startSluice(target, { args: ["--config", path], env: CLEAN_ENV });
  const received = () => sluice.events("signal").filter((r) => r.signal === "SIGHUP").length;
  const providers = async () => {
    const metrics = await readMetrics(sluice);
    return { built: metrics.sluice_tracer_providers_built_total, active: metrics.sluice_tracer_providers_active };
  };
  /** Provider counts seen while the reloads ran, one sample every 50 SIGHUPs. */
  const samples: { built: number | undefined; active: number | undefined }[] = [];
  return {
    sluice,
    otlp,
    received,
    samples,
    /**
     * Sends `count` SIGHUPs, each once sluice logged the reload of the one before (waiting up
     * to 2 s): the kernel keeps one pending signal per kind, so HUPs sent back to back would
     * merge, and a HUP during a reload is coalesced with the next, more of them the slower
     * the machine runs (one CI run coalesced 158 of 1,000 under Deno).
     */
    async hups(count: number): Promise<void> {
      for (let i = 0; i < count; i++) {
        const before = received();
        const reloadsBefore = sluice.events("reload").length;
        sluice.signal("SIGHUP");
        for (let waited = 0; waited < 100 && received() === before; waited++) await Bun.sleep(1);
        for (let waited = 0; waited < 2000 && sluice.events("reload").length === reloadsBefore; waited++) await Bun.sleep(1);
        if (i % 50 === 49) samples.push(await providers());
      }
    },
    /** Waits until the last reload has finished: its record is out and the counter agrees. */
    async settled(): Promise<void> {
      let last = -1;
      await until(async () => {
        const count = sluice.events("reload").length;
        const metric = (await readMetrics(sluice))['sluice_reloads_total{result="ok"}'];
        const still = count === last && metric === count;
        last = count;
        if (!still) await Bun.sleep(200);
        return still;
      }, 60_000, "the reloads to finish");
    },
    providers,
  };
}

/**
 * How much resident memory may grow over 1,000 reloads, from a baseline taken after a warm-up
 * of 300 reloads and 3,000 requests (Deno's: its peak so far, see the test; both read after
 * 1.5 s idle; nothing sluice can be told from outside forces a GC). For scale: a pipeline is
 * about 5 KiB of heap and a tracer provider about 4 KiB, so a provider leaked per reload is
 * caught exactly by the metrics below, not by this bound; the bound catches a leak of about
 * 16 KiB (binary) or 40 KiB (Deno) per reload.
 *
 * A leak grows with every reload; the heaps sizing themselves to the load do not, they step
 * once and then swing. Measured: binary +0.8 to +14.3 MiB over one round; Deno mostly +9 to
 * +31 MiB, with the same load and no reloads +9 to +17, 5,000 reloads in a row +18 in all
 * (round to round -5..+8, not linear), and once in a full-suite run +54.9 with the next three
 * runs at +9.7, +17.6 and +31.3. A second round right after the first, from where the first
 * ended: binary +3.9, +0.1, -5.8; Deno -4.1, -6.2, -17.3. So a round over the bound is
 * followed by a confirming round: a real leak crosses the bound again, a heap step does not
 * repeat. Checked with 40 KiB leaked per reload: binary +45.6 then +46.6, Deno +40.6 then
 * +53.9, both failing.
 */
const RSS_GROWTH_MIB = { binary: 16, deno: 40 };
/** Pooled keep-alive sockets (test client -> sluice, sluice -> app, sluice -> receiver) may differ by a few. */
const FD_SLACK = 4;

type Soak = Awaited<ReturnType<typeof startSoak>>;

/**
 * One round of the soak: the load and `reloads` SIGHUPs (and at least `minRequests` requests),
 * then 1.5 s idle so that pools and timers settle before the figures are read.
 */
async function soakRound(soak: Soak, reloads: number, minRequests = 0) {
  const { sluice } = soak;
  const reloadsBefore = sluice.events("reload").length;
  const hupsBefore = soak.received();
  const startedAt = performance.now();
  const load = startLoad(sluice, 4);
  await soak.hups(reloads);
  await until(() => load.done >= minRequests, 60_000, `${minRequests} requests`);
  await soak.settled();
  const reloadMs = Math.round(performance.now() - startedAt);
  await load.stop();
  await Bun.sleep(1500);
  return {
    failures: load.failures,
    requests: load.done,
    hupsReceived: soak.received() - hupsBefore,
    reloads: sluice.events("reload").length - reloadsBefore,
    reloadMs,
    fds: openFds(sluice.proc.pid),
  };
}

const mib = (kib: number) => Math.round(kib / 102.4) / 10;

describe.each(TARGETS)("reload soak ($name)", (target) => {
  test(`${RELOADS} SIGHUP reloads under load: nothing fails, nothing leaks, the stop is prompt and clean`, async () => {
    const soak = await startSoak(target);
    const { sluice } = soak;
    const pid = sluice.proc.pid;
    // Warm-up: the same load and 300 reloads, so pools, JIT and heaps reach their working size.
    const warmup = await soakRound(soak, 300, 3000);
    const rounds: { fds: number[]; rssMiB: number[] }[] = [];
    const measureRound = async (baselineKiB: number) => {
      const before = { fds: openFds(pid), rssKiB: baselineKiB };
      const round = await soakRound(soak, RELOADS);
      const afterKiB = rssKiB(pid);
      rounds.push({ fds: [before.fds, round.fds], rssMiB: [mib(before.rssKiB), mib(afterKiB)] });
      return { ...round, fdsBefore: before.fds, rssGrowthMiB: mib(afterKiB - before.rssKiB) };
    };
    const bound = RSS_GROWTH_MIB[target.name];
    // Deno's first baseline is its peak so far: V8 sometimes gives back tens of MiB right after
    // the warm-up (one CI run: 137 MiB, where other runs read 178-187) and takes them again
    // under the same load, which is no leak. The binary's heap does not swing so. The
    // confirming round starts from where the first one ended, so a leak is not hidden under a
    // peak the first round reached.
    const round = await measureRound(target.name === "deno" ? rssKiB(pid, "VmHWM") : rssKiB(pid));
    const confirm = round.rssGrowthMiB >= bound ? await measureRound(rssKiB(pid)) : undefined;
    const metrics = await readMetrics(sluice);
    console.log(JSON.stringify({
      target: target.name,
      hupsSent: RELOADS,
      hupsReceived: round.hupsReceived,
      reloads: round.reloads,
      reloadMs: round.reloadMs,
      requests: round.requests,
      warmupRequests: warmup.requests,
      rounds,
      spansExported: metrics.sluice_spans_exported_total,
      spansDropped: metrics.sluice_spans_dropped_total,
    }));

    expect([...warmup.failures, ...round.failures, ...(confirm?.failures ?? [])]).toEqual([]);
    expect(sluice.events("reload").every((r) => r.result === "ok")).toBe(true);
    expect(round.reloads).toBeGreaterThanOrEqual(RELOADS * 0.99); // each HUP waits for the reload before it
    expect(soak.samples.every((sample) => sample.built === 1 && sample.active === 1)).toBe(true);
    expect(await soak.providers()).toEqual({ built: 1, active: 1 });
    expect(Math.max(round.fds, confirm?.fds ?? 0)).toBeLessThanOrEqual(round.fdsBefore + FD_SLACK);
    // Within the bound over the round, or (a heap step, not a leak) over the confirming round.
    expect((confirm ?? round).rssGrowthMiB).toBeLessThan(bound);
    expect(metrics.sluice_spans_dropped_total).toBe(0);

    const stopAt = performance.now();
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode(10_000)).toBe(0);
    const stopMs = Math.round(performance.now() - stopAt);
    console.log(JSON.stringify({ target: target.name, stopMs }));
    expect(stopMs).toBeLessThan(5000);
    expect(sluice.records.at(-1)).toMatchObject({ event: "shutdown.complete", exitCode: 0, aborted: 0, killed: 0 });
  }, 180_000);
});

/**
 * main.ts ends with runtime.exit(code), so the real entry exits even with a timer or socket
 * left behind. This entry is main.ts without that call: the process then ends only once
 * nothing is left to run, which is what shows that nothing leaked.
 */
function naturalExitTarget(target: Target): Target {
  const entry = join(tempDir(), "natural-exit.ts");
  writeFileSync(
    entry,
    [
      `import { runCli } from ${JSON.stringify(join(ROOT, "src/cli.ts"))};`,
      `import { loadRuntime } from ${JSON.stringify(join(ROOT, "src/runtime/load.ts"))};`,
      "const code = await runCli(await loadRuntime());",
      "const global = globalThis as { Deno?: { exitCode: number }; process?: { exitCode?: number } };",
      "if (global.Deno) global.Deno.exitCode = code;",
      "else global.process!.exitCode = code;",
      "",
    ].join("\n"),
  );
  return target.name === "binary"
    ? { name: "binary", command: [BUN, entry] }
    // --config: the entry lives outside the project, whose package.json resolves the npm imports.
    : { name: "deno", command: [DENO, "run", "--allow-all", "--config", join(ROOT, "deno.json"), "--unstable-net", "--unstable-no-legacy-abort", entry] };
}

describe.each(TARGETS)("reload soak, from source without the final exit() ($name)", (target) => {
  test(`after ${RELOADS} reloads under load and SIGTERM, nothing keeps the process alive`, async () => {
    const soak = await startSoak(naturalExitTarget(target));
    const { sluice } = soak;
    const round = await soakRound(soak, RELOADS);
    expect(round.failures).toEqual([]);
    expect(await soak.providers()).toEqual({ built: 1, active: 1 });
    const reloads = sluice.events("reload").length;

    sluice.signal("SIGTERM");
    const complete = await sluice.waitFor("shutdown.complete", 10_000);
    const completeAt = performance.now();
    // A leaked timer (the shortest sluice has is seconds long) or socket would hold it here.
    expect(await sluice.exitCode(10_000)).toBe(0);
    const lingerMs = Math.round(performance.now() - completeAt);
    console.log(JSON.stringify({ target: `${target.name} from source`, reloads, requests: round.requests, lingerMs }));
    expect(complete).toMatchObject({ exitCode: 0, aborted: 0, killed: 0 });
    expect(lingerMs).toBeLessThan(1000);
  }, 120_000);
});
