/**
 * The child for the accounting audit (run with Bun). Every path may carry a tag segment first
 * (/t/<tag>/rest), so each request is recognisable in spans (url.path); the app routes on rest.
 *   STATE_DIR            where it remembers crashes (a restarted child binds RESTART_BIND_DELAY_MS late)
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const env = process.env;
const stateDir = env.STATE_DIR!;
const encoder = new TextEncoder();
const restarted = existsSync(join(stateDir, "started"));
writeFileSync(join(stateDir, "started"), "1");

function route(pathname: string): string {
  return pathname.startsWith("/t/") ? "/" + pathname.split("/").slice(3).join("/") : pathname;
}

async function handle(request: Request, server: Bun.Server<unknown>): Promise<Response | undefined> {
  const url = new URL(request.url);
  const q = url.searchParams;
  const path = route(url.pathname);
  switch (path) {
    case "/small":
      return new Response("x".repeat(Number(q.get("bytes") ?? 1024)), { headers: { "content-type": "application/octet-stream" } });
    case "/big":
      return new Response("<p>sluice</p>\n".repeat(Math.ceil(Number(q.get("bytes") ?? 100_000) / 14)).slice(0, Number(q.get("bytes") ?? 100_000)), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    case "/stream": {
      const chunks = Number(q.get("chunks") ?? 3);
      const gap = Number(q.get("gap") ?? 50);
      let sent = 0;
      return new Response(new ReadableStream({
        async pull(controller) {
          if (sent > 0) await Bun.sleep(gap);
          if (chunks > 0 && sent >= chunks) return controller.close();
          sent++;
          controller.enqueue(encoder.encode(`chunk ${sent} ${"y".repeat(100)}\n`));
        },
      }), { headers: { "content-type": "application/octet-stream" } });
    }
    case "/stream-error":
      return new Response(new ReadableStream({
        async pull(controller) {
          controller.enqueue(encoder.encode("partial\n"));
          await Bun.sleep(100);
          controller.error(new Error("the app failed midway"));
        },
      }), { headers: { "content-type": "application/octet-stream" } });
    case "/sse": {
      let sent = 0;
      return new Response(new ReadableStream({
        async pull(controller) {
          if (sent > 0) await Bun.sleep(30);
          sent++;
          controller.enqueue(encoder.encode(`id: ${sent}\ndata: event ${sent}\n\n`));
        },
      }), { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    }
    case "/stream-crash": {
      // One chunk, then the child dies midway (once per id).
      const marker = join(stateDir, `crashed-${q.get("id")}`);
      return new Response(new ReadableStream({
        async pull(controller) {
          controller.enqueue(encoder.encode("first chunk\n"));
          await Bun.sleep(100);
          if (!existsSync(marker)) {
            writeFileSync(marker, "1");
            process.exit(1);
          }
          controller.close();
        },
      }), { headers: { "content-type": "application/octet-stream" } });
    }
    case "/slow":
      await Bun.sleep(Number(q.get("ms") ?? 1000));
      return new Response(`slow ${q.get("ms")}\n`);
    case "/hang":
      await Bun.sleep(120_000);
      return new Response("too late\n");
    case "/crash": {
      // Dies without answering, once per tag: the replay (to the restarted child) is answered.
      const marker = join(stateDir, `crashed-${q.get("id")}`);
      if (!existsSync(marker)) {
        writeFileSync(marker, "1");
        process.exit(1);
      }
      return new Response("survived\n");
    }
    case "/upload": {
      const body = new Uint8Array(await request.arrayBuffer());
      return new Response(`got ${body.length}\n`);
    }
    case "/sendfile":
      return new Response(null, { headers: { "x-sendfile": join(stateDir, "public", q.get("name") ?? "file.bin") } });
    case "/cacheable":
      return new Response("c".repeat(500), { headers: { "cache-control": "public, max-age=60", etag: '"v1"', "content-type": "application/octet-stream" } });
    case "/status":
      return new Response(q.get("body") ?? null, { status: Number(q.get("code") ?? 200) });
    case "/ws":
      return server.upgrade(request, { data: {} }) ? undefined : new Response("bad handshake\n", { status: 400 });
    case "/ws-refuse":
      return new Response("forbidden\n", { status: 403 });
    default:
      return new Response("not found\n", { status: 404 });
  }
}

// The delay file, when there, overrides RESTART_BIND_DELAY_MS (held requests that time out).
const delayFile = join(stateDir, "restart-delay");
if (restarted) await Bun.sleep(Number(existsSync(delayFile) ? readFileSync(delayFile, "utf8") : (env.RESTART_BIND_DELAY_MS ?? 0)));
// STOP_LINGER_MS: exit that long after SIGTERM (the stop-child phase, when /metrics still answers).
process.on("SIGTERM", () => setTimeout(() => process.exit(0), Number(env.STOP_LINGER_MS ?? 0)));
Bun.serve({
  hostname: "127.0.0.1",
  port: Number(env.PORT),
  idleTimeout: 0,
  fetch: (request, server) => handle(request, server),
  websocket: { message: (ws, message) => void ws.send(message) },
});
