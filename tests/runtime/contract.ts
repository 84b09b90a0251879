/**
 * @module The Runtime interface's behaviour, exercised through whichever adapter the running
 * runtime selects. adapter.test.ts runs this script under Bun and under Deno and expects the
 * same results from both. It prints one JSON object of observations.
 */

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileResponse } from "../../src/files/file-response.ts";
import { loadRuntime } from "../../src/runtime/load.ts";
import { Http1Client } from "../../src/upstream/http1-client.ts";

const runtime = await loadRuntime();
const results: Record<string, unknown> = { runtime: runtime.name };
const text = (stream: ReadableStream<Uint8Array>) => new Response(stream).text();
const freeListener = await runtime.serve({ hostname: "127.0.0.1", port: 0, handler: () => new Response("x") });
const closedPort = freeListener.port;
freeListener.close();

// serve: remote address, then close() refuses new connections while a request in flight finishes.
let release!: () => void;
const held = new Promise<void>((resolve) => (release = resolve));
const listener = await runtime.serve({
  hostname: "127.0.0.1",
  port: 0,
  handler: async (request, info) => {
    if (new URL(request.url).pathname === "/held") await held;
    return new Response(info.remoteAddress);
  },
});
const base = `http://127.0.0.1:${listener.port}`;
results.remoteAddress = await (await fetch(`${base}/`)).text();
const inFlight = fetch(`${base}/held`).then((r) => r.status);
await new Promise((resolve) => setTimeout(resolve, 200));
listener.close();
// Once refusing() settles the port refuses, seen before this process's event loop turns
// again: a probe run synchronously, as sluice signals its child in a fast stop.
await listener.refusing();
results.refusingAtOnce = connectsNow(listener.port) ? "accepted" : "refused";
results.probeAfterClose = await runtime.probeTcp("127.0.0.1", listener.port);
release();
results.inFlightAfterClose = await inFlight;
results.probeClosedPort = await runtime.probeTcp("127.0.0.1", closedPort);
// freePort: a port nobody listens on, which can then be bound.
const picked = runtime.freePort("127.0.0.1");
const onPicked = await runtime.serve({ hostname: "127.0.0.1", port: picked, handler: () => new Response("picked") });
results.freePort = { inRange: picked > 0 && picked < 65536, bound: onPicked.port === picked, answers: await (await fetch(`http://127.0.0.1:${picked}/`)).text() };
await onPicked.close();

// spawn: exit codes, output, signals, process groups.
const exits = runtime.spawn(["sh", "-c", "echo out; echo err >&2; exit 3"], { env: { PATH: "/usr/bin:/bin" } });
results.exit = { ...(await exits.exited), stdout: await text(exits.stdout), stderr: await text(exits.stderr) };
const killed = runtime.spawn(["sh", "-c", "kill -9 $$"], { env: { PATH: "/usr/bin:/bin" } });
results.killed = await killed.exited;
const group = runtime.spawn(["sh", "-c", "ps -o pgid= $$; sleep 600 & sleep 600 & wait"], { env: { PATH: "/usr/bin:/bin" } });
const reader = group.stdout.getReader();
const pgid = Number(new TextDecoder().decode((await reader.read()).value).trim());
results.ownGroup = pgid === group.pid;
results.killGroup = group.killGroup("SIGTERM");
results.groupExit = await group.exited;
// The orphaned sleeps are zombies until the machine's PID 1 reaps them (here it takes up to
// a second or two): wait, bounded, for the group to vanish.
for (let i = 0; i < 100 && group.killGroup("SIGKILL"); i++) await new Promise((resolve) => setTimeout(resolve, 100));
results.killGroupWhenGone = group.killGroup("SIGKILL");
const env = runtime.spawn(["sh", "-c", "echo $ONLY; echo ${HOME:-unset}"], { env: { PATH: "/usr/bin:/bin", ONLY: "given" } });
results.childEnv = (await text(env.stdout)).trim().split("\n");

// connectTcp, through the upstream client: bytes pass through undecoded, Host is sent as given,
// no headers are added.
const client = new Http1Client({ connect: runtime.connectTcp });
const gzip = new Uint8Array(await new Response(new Blob(["hello ".repeat(1000)]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
const upstream = await runtime.serve({
  hostname: "127.0.0.1",
  port: 0,
  handler: (request) =>
    new URL(request.url).pathname === "/gzip"
      ? new Response(gzip, { headers: { "content-encoding": "gzip" } })
      : Response.json(Object.fromEntries(request.headers)),
});
const gz = await client.fetch(`http://127.0.0.1:${upstream.port}/gzip`, { headers: new Headers({ "accept-encoding": "gzip" }) });
const gzBytes = new Uint8Array(await gz.arrayBuffer());
results.gzip = { encoding: gz.headers.get("content-encoding"), exact: gzBytes.length === gzip.length && gzBytes.every((b, i) => b === gzip[i]) };
const echoed = await (await client.fetch(`http://127.0.0.1:${upstream.port}/`, { headers: new Headers({ host: "example.test:8080", "x-a": "1" }) })).json();
results.host = echoed.host;
results.acceptEncodingAdded = "accept-encoding" in echoed;
upstream.close();
client.close();

// openFile, through fileResponse and the runtime's own server: whole file, a
// range (Bun sends a Blob slice with sendfile, Deno streams it), 304, 416, and no file;
// then a small file, which Bun reads whole when it opens it (READ_WHOLE_MAX_BYTES).
const dir = new URL(`file:///tmp/sluice-contract-${runtime.pid}/`).pathname;
await runtime.spawn(["mkdir", "-p", dir], { env: { PATH: "/usr/bin:/bin" } }).exited;
const fileText = "0123456789".repeat(10_000); // 100,000 bytes: several of Deno's 64 KiB reads, above Bun's whole reads
await (runtime.spawn(["sh", "-c", `printf '%s' "$TEXT" > ${dir}file.txt`], { env: { PATH: "/usr/bin:/bin", TEXT: fileText } })).exited;
const smallText = fileText.slice(0, 1000);
await (runtime.spawn(["sh", "-c", `printf '%s' "$TEXT" > ${dir}small.txt`], { env: { PATH: "/usr/bin:/bin", TEXT: smallText } })).exited;
const files = await runtime.serve({
  hostname: "127.0.0.1",
  port: 0,
  handler: async (request) => {
    const answer = await fileResponse(request, dir + new URL(request.url).pathname.slice(1), runtime);
    return answer instanceof Response ? answer : new Response("none", { status: 404 });
  },
});
const fileUrl = `http://127.0.0.1:${files.port}/file.txt`;
const whole = await fetch(fileUrl);
const etag = whole.headers.get("etag")!;
const wholeText = await whole.text();
const ranged = await fetch(fileUrl, { headers: { range: "bytes=99990-" } });
const smallUrl = `http://127.0.0.1:${files.port}/small.txt`;
const small = await fetch(smallUrl);
const smallRanged = await fetch(smallUrl, { headers: { range: "bytes=10-19" } });
results.files = {
  whole: { status: whole.status, type: whole.headers.get("content-type"), length: whole.headers.get("content-length"), same: wholeText === fileText },
  range: { status: ranged.status, contentRange: ranged.headers.get("content-range"), body: await ranged.text() },
  notModified: (await fetch(fileUrl, { headers: { "if-none-match": etag } })).status,
  unsatisfiable: (await fetch(fileUrl, { headers: { range: "bytes=100000-" } })).status,
  small: { status: small.status, length: small.headers.get("content-length"), same: (await small.text()) === smallText },
  smallRange: { status: smallRanged.status, contentRange: smallRanged.headers.get("content-range"), body: await smallRanged.text() },
  missing: (await fetch(`http://127.0.0.1:${files.port}/nothing`)).status,
  directory: (await fetch(`http://127.0.0.1:${files.port}/`)).status,
};
files.close();
// An error that escapes the handler (on Bun, a file body that fails to open once returned):
// the default error answer is a plain 500, without the error's text.
const failing = await runtime.serve({
  hostname: "127.0.0.1",
  port: 0,
  handler: () => {
    throw new Error(`ENOENT: no such file or directory, open '${dir}gone.txt'`);
  },
});
const failed = await fetch(`http://127.0.0.1:${failing.port}/`);
results.handlerError = { status: failed.status, namesPath: (await failed.text()).includes(dir) };
failing.close();
// A file renamed over the path once opened: both send the file they opened (Bun read it whole).
const sh = (script: string) => runtime.spawn(["sh", "-c", script], { env: { PATH: "/usr/bin:/bin" } }).exited;
await sh(`printf old-content > ${dir}renamed.txt`);
const opened = await runtime.openFile(`${dir}renamed.txt`);
await sh(`printf NEW-CONTENT-LONGER > ${dir}new.txt && mv ${dir}new.txt ${dir}renamed.txt`);
results.renamedOver = typeof opened === "string" ? opened : await opened.response(0, opened.size - 1, {}).text();
// A file that shrinks after its response was made: reading the body fails, never ends short
// (on Bun a file above READ_WHOLE_MAX_BYTES, which it reads only as it sends it).
const shrinking = await fileResponse(new Request("http://x/shrinking"), `${dir}file.txt`, runtime);
await runtime.spawn(["truncate", "-s", "1000", `${dir}file.txt`], { env: { PATH: "/usr/bin:/bin" } }).exited;
results.shrunkBody = await new Response((shrinking as Response).body).arrayBuffer().then((bytes) => `ended after ${bytes.byteLength} bytes`, () => "failed");
// A file body cancelled after its last part was read from the file but before it was taken
// (a client gone just before the end: Deno.serve cancels the body then): the cancel settles,
// it does not fail on a file already closed by reaching the end.
const fdCount = () => readdirSync("/proc/self/fd").length;
await sh(`head -c 100000 /dev/zero > ${dir}parts.txt`);
const fdsBeforeOpen = fdCount();
const parts = await runtime.openFile(`${dir}parts.txt`);
if (typeof parts !== "string") {
  const reader = parts.response(0, parts.size - 1, {}).body!.getReader();
  await reader.read(); // the first 64 KiB; the stream then reads the rest and closes the file
  for (const deadline = Date.now() + 5000; fdCount() > fdsBeforeOpen && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 5));
  results.cancelAtEnd = await reader.cancel().then(() => "settled", (error) => `failed: ${error}`);
}
await runtime.spawn(["ln", "-s", `${dir}file.txt`, `${dir}link`], { env: { PATH: "/usr/bin:/bin" } }).exited;
results.realPath = {
  symlink: runtime.realPath(`${dir}link`) === `${dir}file.txt`,
  dotDot: runtime.realPath(`${dir}../${dir.split("/").at(-2)}/./file.txt`) === `${dir}file.txt`,
  missing: runtime.realPath(`${dir}nothing`) ?? "undefined",
};
await runtime.spawn(["rm", "-rf", dir], { env: { PATH: "/usr/bin:/bin" } }).exited;

results.envHasPath = typeof runtime.env().PATH === "string";
await runtime.write(1, new TextEncoder().encode(JSON.stringify(results) + "\n"));
runtime.exit(0);

/** Whether 127.0.0.1:`port` accepts a connection, asked by a process this one waits for. */
function connectsNow(port: number): boolean {
  const probe = spawnSync("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`], { stdio: "ignore" });
  return probe.status === 0;
}
