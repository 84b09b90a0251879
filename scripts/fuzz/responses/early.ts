/**
 * Early answers while the client still uploads (the app answers 401 before reading the body,
 * then drains it, leaves it unread or closes), with and without a next request on the client's
 * connection; then a stalled body at SIGTERM (run with APP_IDLE=100 so the app keeps it open).
 *
 *   APP_IDLE=100 bun scripts/fuzz/responses/early.ts <binary|deno> <basePort>
 */
import { connect } from "node:net";
import { fds, metrics, request, startSluice, stop } from "./lib.ts";

const [target = "binary", base = "21200"] = process.argv.slice(2);
const s = await startSluice(target, Number(base), ["--drain-timeout", "3s"]);
const fd0 = fds(s.proc.pid!);

async function slowUpload(path: string, total: number, firstChunk: number, keepAlive: boolean) {
  return new Promise<{ text: string; gotBeforeEnd: boolean; ended: string }>((resolve) => {
    const sock = connect({ host: "127.0.0.1", port: s.http });
    let text = "";
    let sent = 0;
    let gotBeforeEnd = false;
    const t0 = Date.now();
    sock.on("connect", async () => {
      sock.write(`POST ${path} HTTP/1.1\r\nhost: a\r\ncontent-length: ${total}\r\n${keepAlive ? "" : "connection: close\r\n"}\r\n`);
      sock.write("x".repeat(firstChunk));
      sent = firstChunk;
      while (sent < total && !sock.destroyed) {
        await Bun.sleep(20);
        const n = Math.min(5000, total - sent);
        sock.write("x".repeat(n));
        sent += n;
      }
      if (keepAlive && !sock.destroyed) {
        await Bun.sleep(100);
        sock.write(`GET /ok/second HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n`);
      }
    });
    sock.on("data", (d) => {
      if (sent < total && !gotBeforeEnd) gotBeforeEnd = true;
      text += d.toString("latin1");
    });
    const timer = setTimeout(() => (sock.destroy(), resolve({ text, gotBeforeEnd, ended: "TIMEOUT" })), 15000);
    sock.on("close", () => (clearTimeout(timer), resolve({ text, gotBeforeEnd, ended: `closed after ${Date.now() - t0}ms sent=${sent}` })));
    sock.on("error", () => {});
  });
}

for (const arg of ["drain", "unread", "close"]) {
  for (const ka of [false, true]) {
    const r = await slowUpload(`/early/e${arg}${ka ? "ka" : ""}/${arg}`, 200_000, 1000, ka);
    const statuses = [...r.text.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    console.log(`early/${arg} keepalive=${ka}: statuses ${statuses} before end of upload: ${r.gotBeforeEnd}; ${r.ended}; tokens ${[...r.text.matchAll(/X-Token: (\S+)/gi)].map((m) => m[1])}`);
  }
}
await Bun.sleep(500);
console.log("in-flight", (await metrics(s))["sluice_requests_in_flight"], "fds", fd0, "->", fds(s.proc.pid!));
// a probe
console.log("probe", (await request(s.http, "POST", "/ok/probe1", { body: "p" })).status);

// stalled body at SIGTERM: close-delimited body that never ends
const stalled = new Promise<string>((resolve) => {
  const sock = connect({ host: "127.0.0.1", port: s.http });
  let text = "";
  sock.on("connect", () => sock.write("GET /raw/stall/485454502f312e3120323030204f4b0d0a582d546f6b656e3a2073740d0a0d0a6869 HTTP/1.1\r\nhost: a\r\nx-dirty: 0\r\n\r\n"));
  sock.on("data", (d) => (text += d.toString("latin1")));
  sock.on("close", () => resolve(text));
  sock.on("error", () => {});
});
await Bun.sleep(300);
console.log("in-flight during stall", (await metrics(s))["sluice_requests_in_flight"]);
const t0 = Date.now();
const code = await stop(s);
console.log("exit", code, "after", Date.now() - t0, "ms; stalled client got", JSON.stringify((await stalled).slice(0, 200)));
console.log("stderr", s.stderr.join("").slice(0, 1000));
console.log(s.records.filter((r) => r.event !== "access" || String(r.path).includes("early") || String(r.path).includes("stall")).map((r) => JSON.stringify(r).slice(0, 300)).join("\n"));
