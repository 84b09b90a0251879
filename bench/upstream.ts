// Benchmark upstream: the kind of app sluice supervises. Answers every request
// with a fixed 1 KiB text/plain body on process.env.PORT.
const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error("upstream: PORT must be set to a port number");
  process.exit(2);
}
const body = "x".repeat(1023) + "\n"; // 1024 bytes
const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch: () => new Response(body, { headers: { "content-type": "text/plain" } }),
});
const stop = () => { server.stop(true); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
export {};
