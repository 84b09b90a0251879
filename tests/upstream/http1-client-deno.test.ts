/** @module Http1Client on Deno: a real Deno process, Deno.connect, against a gzip upstream served by Bun. */

import { afterEach, expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");
const deno = join(root, "node_modules/.bin/deno");
const fixture = join(import.meta.dir, "fixtures/deno-passthrough.ts");

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("on Deno, gzip bytes pass through exactly and the given Host is sent", async () => {
  const gzipped = Bun.gzipSync(new TextEncoder().encode("deno gzip passthrough ".repeat(200)));
  const seen: { host: string | null; names: string[]; port: number }[] = [];
  const upstream = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, server) {
      seen.push({ host: req.headers.get("host"), names: [...req.headers.keys()], port: server.requestIP(req)!.port });
      return new Response(gzipped, { headers: { "content-encoding": "gzip", "content-type": "text/plain" } });
    },
  });
  cleanups.push(() => upstream.stop(true));

  const child = Bun.spawn([deno, "run", "-A", fixture, `http://127.0.0.1:${upstream.port}/gz`], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    timeout: 30_000, // killed if it hangs, e.g. on a leaked timer
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const [stdout, stderr, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });

  const results = JSON.parse(stdout) as { status: number; headers: Record<string, string>; bodyHex: string }[];
  expect(results).toHaveLength(2);
  for (const result of results) {
    expect(result.status).toBe(200);
    expect(result.headers["content-encoding"]).toBe("gzip");
    expect(result.headers["content-length"]).toBe(String(gzipped.length));
    expect(result.bodyHex).toBe(Buffer.from(gzipped).toString("hex"));
  }
  expect(seen.map((s) => s.host)).toEqual(["example.test", "example.test"]);
  expect(seen[0]!.names.sort()).toEqual(["accept-encoding", "host"]); // nothing added (no user-agent, accept-language)
  expect(new Set(seen.map((s) => s.port)).size).toBe(1); // the keep-alive pool works on Deno too
}, 60_000); // explicit: bunfig's [test] timeout is not read by bun 1.4.5 (the default is 5 s)
