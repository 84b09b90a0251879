/**
 * @module The child of the lifecycle fuzzer (run with Bun). What it does is set by variables,
 * so each case states its child:
 *   LC_READY_DELAY_MS  wait this long before listening on $PORT
 *   LC_ON_TERM         exit | slow | ignore: on the stop signal, exit at once, after
 *                      LC_TERM_EXIT_MS, or never (sluice must SIGKILL it)
 *   LC_GRANDCHILD      none | sleep | stubborn: a `sleep 600` in the child's process group,
 *                      the stubborn one ignoring SIGTERM
 *   LC_RECORD          a file it appends one JSON line to at start and at each SIGTERM
 *   PROBE_PORT         sluice's port: at SIGTERM the child checks whether it still accepts
 *   LC_NEW_CHILDREN    what the k-th child on a PORT no earlier child had (a rolling restart's
 *                      new one) does, comma-separated: normal | slow-ready (listens after
 *                      800 ms) | never-ready (never listens) | exit (exits 4 at once) |
 *                      ignore-port (listens on LC_TARGET_PORT, the --target-port, as an app
 *                      that takes its port from its own configuration; exits 1 when it is taken)
 * The first child, and one restarted after a crash (on the port its predecessor had), are normal.
 * Endpoints: / ("hello"), /slow?ms=N, /stream?n=N&gap=MS (N parts, MS apart), POST /echo (the
 * body's length back), /crash (exits 3 at once, unanswered), /ready (for --ready-path: 200 once listening).
 * At SIGTERM it records what it saw: whether sluice's port accepted and how many requests
 * were in flight here (a request whose client left counts no more), the proof that sluice
 * signals its child only after its listener closed and its drain ended.
 */

import { appendFileSync, readFileSync } from "node:fs";
import { connect } from "node:net";

const env = process.env;
let inFlight = 0;

function record(entry: Record<string, unknown>): void {
  if (env.LC_RECORD) appendFileSync(env.LC_RECORD, `${JSON.stringify({ pid: process.pid, at: Date.now(), ...entry })}\n`);
}

/** Whether sluice's own port still accepts a connection (it must refuse once the child hears the stop). */
function probeSluice(): Promise<"refused" | "accepted"> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port: Number(env.PROBE_PORT) });
    socket.once("connect", () => (socket.destroy(), resolve("accepted")));
    socket.once("error", () => resolve("refused"));
  });
}

let grandchild: number | undefined;
if (env.LC_GRANDCHILD === "sleep" || env.LC_GRANDCHILD === "stubborn") {
  const command = env.LC_GRANDCHILD === "sleep" ? ["sleep", "600"] : ["sh", "-c", "trap '' TERM; exec sleep 600"];
  grandchild = Bun.spawn(command, { stdio: ["ignore", "ignore", "ignore"] }).pid;
}
/** The first child, a restarted one (on a port an earlier child had), or a rolling restart's new one (and what it does). */
function roleOf(): { role: "first" | "restart" | "new"; behaviour: string } {
  let starts: Record<string, unknown>[] = [];
  try {
    starts = readFileSync(env.LC_RECORD!, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line)).filter((r) => r.event === "start");
  } catch {
    // no record yet: the first child
  }
  if (starts.length === 0) return { role: "first", behaviour: "normal" };
  if (starts.some((r) => r.port === Number(env.PORT))) return { role: "restart", behaviour: "normal" };
  const nth = starts.filter((r) => r.role === "new").length;
  return { role: "new", behaviour: (env.LC_NEW_CHILDREN ?? "").split(",")[nth] || "normal" };
}
const { role, behaviour } = roleOf();
record({ event: "start", grandchild: grandchild ?? null, port: Number(env.PORT), role, behaviour });

process.on("SIGTERM", async () => {
  const inFlightAtTerm = inFlight;
  const heardAt = Date.now();
  const sluicePort = await probeSluice();
  record({ event: "term", inFlight: inFlightAtTerm, sluicePort, heardAt });
  const mode = env.LC_ON_TERM ?? "exit";
  if (mode === "exit") process.exit(0);
  if (mode === "slow") setTimeout(() => process.exit(0), Number(env.LC_TERM_EXIT_MS ?? 500));
});

/** Waits `ms`, or until the client left (then the request no longer counts as in flight). */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  switch (url.pathname) {
    case "/slow": {
      const ms = Number(url.searchParams.get("ms") ?? 500);
      await wait(ms, request.signal);
      return new Response(`slow ${ms}\n`);
    }
    case "/stream": {
      // `n` parts, `gap` ms apart: a response still being sent when a drain's deadline comes.
      const n = Number(url.searchParams.get("n") ?? 3);
      const gap = Number(url.searchParams.get("gap") ?? 100);
      let sent = 0;
      return new Response(new ReadableStream({
        async pull(controller) {
          if (sent > 0) await wait(gap, request.signal);
          if (request.signal.aborted) return controller.close();
          controller.enqueue(new TextEncoder().encode(`part ${sent}\n`));
          if (++sent === n) controller.close();
        },
      }));
    }
    case "/echo": {
      const body = new Uint8Array(await request.arrayBuffer());
      return new Response(`len=${body.length}\n`);
    }
    case "/crash":
      record({ event: "crash" });
      process.exit(3);
      break;
    case "/ready":
      return new Response("ready\n");
  }
  return new Response("hello\n");
}

if (behaviour === "exit") {
  record({ event: "exit", code: 4 });
  process.exit(4);
}
if (behaviour === "never-ready") setInterval(() => {}, 60_000); // alive, never listening
else {
  await new Promise((resolve) => setTimeout(resolve, Number(env.LC_READY_DELAY_MS ?? 0) + (behaviour === "slow-ready" ? 800 : 0)));
  const port = behaviour === "ignore-port" ? Number(env.LC_TARGET_PORT) : Number(env.PORT);
  try {
    Bun.serve({
      hostname: "127.0.0.1",
      port,
      idleTimeout: 0,
      async fetch(request) {
        inFlight++;
        try {
          return await handle(request);
        } finally {
          inFlight--;
        }
      },
    });
  } catch (error) {
    // The port is taken (an ignore-port child beside the old one): exit 1, as such an app does, without a stack trace.
    record({ event: "exit", code: 1, error: String(error) });
    process.exit(1);
  }
}
