// Baseline: the simplest Bun reverse proxy. Usage: bun bench/raw-proxy.ts <listen-port> <target-port>
// (or LISTEN_PORT / TARGET_PORT). sluice is compared against this.
const listen = Number(process.argv[2] ?? process.env.LISTEN_PORT);
const target = `http://127.0.0.1:${Number(process.argv[3] ?? process.env.TARGET_PORT)}`;
Bun.serve({
  hostname: "127.0.0.1",
  port: listen,
  fetch(req) {
    const url = new URL(req.url);
    return fetch(target + url.pathname + url.search, {
      method: req.method, headers: req.headers, body: req.body, duplex: "half",
      decompress: false, redirect: "manual",
    } as RequestInit);
  },
});
process.on("SIGTERM", () => process.exit(0));
export {};
