/**
 * @module The example app sluice runs in the README's quick start: a tiny server on $PORT
 * that needs nothing but the runtime sluice was installed with (Bun or Deno).
 */

const port = Number(process.env.PORT ?? 3000);

function handle(request: Request): Response | Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/slow") {
    const ms = Number(url.searchParams.get("ms") ?? 2000);
    return new Promise((resolve) => setTimeout(() => resolve(new Response(`slept ${ms}ms\n`)), ms));
  }
  if (url.pathname === "/stream") {
    let n = 0;
    const body = new ReadableStream({
      async pull(controller) {
        if (n++ >= 5) return controller.close();
        controller.enqueue(new TextEncoder().encode(`tick ${n}\n`));
        await new Promise((resolve) => setTimeout(resolve, 500));
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  }
  const headers = Object.fromEntries(request.headers);
  return Response.json({ hello: "from the example app", path: url.pathname, pid: process.pid, headers });
}

// Both runtimes provide the web-standard pieces used above; only the listener differs.
const server = "Bun" in globalThis
  ? (globalThis as any).Bun.serve({ port, hostname: "127.0.0.1", fetch: handle })
  : (globalThis as any).Deno.serve({ port, hostname: "127.0.0.1" }, handle);
console.log(`example app listening on 127.0.0.1:${port} (pid ${process.pid})`);
process.on("SIGTERM", () => {
  console.log("example app: SIGTERM received, exiting");
  server.stop ? server.stop() : server.shutdown();
  process.exit(0);
});
