/**
 * Serves a 100 KiB HTML page twice for bench/compression.ts, through the runtime adapter of
 * whichever runtime runs it (Bun or Deno): on the first port a Hono app without the
 * compression middleware, on the second the same app with it.
 *
 *   bun bench/compression-server.ts <plain-port> <compressed-port>
 *   deno run --allow-all bench/compression-server.ts <plain-port> <compressed-port>
 */
import { Hono } from "hono";
import { compression } from "../src/middleware/compression.ts";
import { loadRuntime } from "../src/runtime/load.ts";
import { page } from "../tests/runtime/fixtures/compression-app.ts";

const runtime = await loadRuntime();
const [plainPort, compressedPort] = runtime.args.map(Number);
const body = page();
const headers = { "content-type": "text/html; charset=utf-8", "content-length": String(body.length) };

function app(compress: boolean): Hono {
  const hono = new Hono();
  if (compress) hono.use(compression({ encodings: runtime.compressionEncodings, compressionStream: runtime.compressionStream }));
  hono.get("/", (c) => c.body(body, 200, headers));
  return hono;
}

for (const [port, compress] of [[plainPort, false], [compressedPort, true]] as const) {
  const hono = app(compress);
  await runtime.serve({ hostname: "127.0.0.1", port: port ?? 0, handler: (request) => hono.fetch(request) });
}
