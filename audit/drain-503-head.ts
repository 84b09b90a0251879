// Prints the head of the 503 a request cut at the drain deadline gets (ports 24100-24102).
import { rawRequest } from "./raw-client.ts";
const [runtime] = process.argv.slice(2);
const root = `${import.meta.dir}/..`;
const cmd = runtime === "deno"
  ? [`${root}/node_modules/.bin/deno`, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", `${root}/src/main.ts`]
  : [`${root}/dist/sluice`];
const proc = Bun.spawn([...cmd, "--http-port", "24100", "--target-port", "24101", "--admin-listen", "127.0.0.1:24102", "--http-host", "127.0.0.1",
  "--shutdown-delay", "0", "--drain-timeout", "300ms", "--", `${root}/node_modules/.bin/bun`, `${root}/tests/fixtures/app.ts`], { stdout: "pipe", stderr: "inherit", cwd: root });
console.log("pid", proc.pid);
const out = new Response(proc.stdout).text();
await Bun.sleep(runtime === "deno" ? 2500 : 1200);
const pending = rawRequest(24100, { path: "/slow?ms=5000", headers: { "x-request-id": "probe" } });
await Bun.sleep(200);
process.kill(proc.pid, "SIGTERM");
const result = await pending;
console.log(JSON.stringify(result.head), result.bodyBytes);
await proc.exited;
console.log((await out).split("\n").filter((l) => l.includes('"access"')).join("\n"));
