/**
 * @module The exporter and the pool on Deno: a real Deno process builds providers from the
 * pool, ends spans, releases, and must exit by itself once the receiver has them.
 */

import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";
import { startReceiver } from "../fixtures/otlp-receiver.ts";

const ROOT = join(import.meta.dir, "../..");
const DENO = join(ROOT, "node_modules/.bin/deno");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("on Deno, spans from pooled providers reach the receiver and the process exits by itself", async () => {
  const receiver = startReceiver();
  cleanups.push(() => receiver.stop());
  const fixture = join(import.meta.dir, "fixtures/pool-cycles.ts");
  const started = performance.now();
  const child = Bun.spawn([DENO, "run", "-A", fixture, receiver.url, "3", "2"], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000, // the fixture's timers are a minute long: a leaked one would hit this
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);

  expect({ exitCode, stderr, signal: child.signalCode }).toEqual({ exitCode: 0, stderr: "", signal: null });
  expect(performance.now() - started).toBeLessThan(20_000);
  const summary = JSON.parse(stdout);
  expect(summary.runtime).toStartWith("Deno/");
  expect(summary).toMatchObject({ counts: { exported: 6, dropped: 0 }, built: 3, active: 0, liveExporters: 0, problems: [] });
  expect(receiver.errors).toEqual([]);
  expect(receiver.spans.map((span) => span.name)).toEqual(
    [0, 1, 2].flatMap((cycle) => [`cycle ${cycle} span 0`, `cycle ${cycle} span 1`]),
  );
  expect(receiver.spans.every((span) => span.resource["service.name"] === "pool-cycles" && span.kind === 2)).toBe(true);
  expect(receiver.requests.every((request) => request.headers["content-type"] === "application/json")).toBe(true);
}, 60_000);
