// Benchmark OTLP/HTTP sink: accepts POST <prefix>/v1/traces, reads the body, answers 200 {}
// without decoding it (a decoding receiver would steal CPU from the load side and distort
// the figures). It counts requests, bytes and spans per <prefix> (spans as occurrences of the
// byte string `"spanId"`, a byte scan, no parse). GET /stats answers the counts as JSON.
//
//   bun bench/otlp-sink.ts <listen-port>      (or PORT)
const port = Number(process.argv[2] ?? process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("otlp-sink: pass the port to listen on");
  process.exit(2);
}

interface Counts { requests: number; bytes: number; spans: number }
const stats: Record<string, Counts> = {};
const NEEDLE = Buffer.from('"spanId"');
const OK = '{}';

function countSpans(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(NEEDLE); i !== -1; i = buf.indexOf(NEEDLE, i + NEEDLE.length)) n++;
  return n;
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (req.method === "POST" && path.endsWith("/v1/traces")) {
      const buf = Buffer.from(await req.arrayBuffer());
      const c = (stats[path.slice(0, -"/v1/traces".length) || "/"] ??= { requests: 0, bytes: 0, spans: 0 });
      c.requests++;
      c.bytes += buf.length;
      c.spans += countSpans(buf);
      return new Response(OK, { headers: { "content-type": "application/json" } });
    }
    if (req.method === "GET" && path === "/stats") return Response.json(stats);
    return new Response("not found\n", { status: 404 });
  },
});
const stop = () => { server.stop(true); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
export {};
