// Experiment: raw-own plus sluice's parts, step by step (MODE=1,2).
import { Context, Hono } from "hono";
import { Http1Client } from "../src/upstream/http1-client.ts";
import { bunConnectTcp } from "../src/runtime/socket-bun.ts";
import { Exchange } from "../src/exchange.ts";
import { downstreamResponseFields, upstreamRequestHeaders } from "../src/forwarded-headers.ts";
const listen = Number(process.argv[2]);
const target = `http://127.0.0.1:${Number(process.argv[3])}`;
const mode = Number(process.env.MODE ?? 1);
const client = new Http1Client({ connect: bunConnectTcp });
const noop = () => {};
function forward(exchange: Exchange) {
  const req = exchange.request;
  exchange.requestId = process.env.UUID === "0" ? "abc" : (req.headers.get("x-request-id") ?? crypto.randomUUID());
  const u = req.url;
  const headers = process.env.HDR === "0" ? req.headers : upstreamRequestHeaders(exchange, []);
  return client.fetch(target + u.slice(u.indexOf("/", 8)), {
    method: req.method, headers, body: req.body, signal: exchange,
    responseHeaders: process.env.RESP === "0" ? undefined : (fields) => downstreamResponseFields(fields, exchange.requestId),
  }).then((r) => { exchange.status = r.status; exchange.end("complete"); return r; });
}
const app = new Hono<{ Bindings: { exchange: Exchange } }>();
const handler = (c: any) => forward(c.env.exchange);
app.all("*", handler);
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: listen,
  fetch(req) {
    const exchange = new Exchange(req, process.env.IP === "0" ? "127.0.0.1" : server.requestIP(req)?.address ?? "", noop);
    if (mode === 3) { const c = new Context(req, { env: { exchange } }); return handler(c); }
    return mode >= 2 ? app.fetch(req, { exchange }) : forward(exchange);
  },
});
process.on("SIGTERM", () => process.exit(0));
