// Experiment: the raw proxy with sluice's own upstream client instead of fetch.
import { Http1Client } from "../src/upstream/http1-client.ts";
import { bunConnectTcp } from "../src/runtime/socket-bun.ts";
const listen = Number(process.argv[2]);
const target = `http://127.0.0.1:${Number(process.argv[3])}`;
const client = new Http1Client({ connect: bunConnectTcp });
Bun.serve({
  hostname: "127.0.0.1",
  port: listen,
  fetch(req) {
    const u = req.url;
    return client.fetch(target + u.slice(u.indexOf("/", 8)), { method: req.method, headers: req.headers, body: req.body });
  },
});
process.on("SIGTERM", () => process.exit(0));
