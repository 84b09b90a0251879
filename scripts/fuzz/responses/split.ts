/**
 * Composite responses (1xx + chunked with extensions and trailers, a length, a 204) cut into
 * two writes at every byte, and sent a byte at a time; each followed by a probe.
 *
 *   bun scripts/fuzz/responses/split.ts <binary|deno> <basePort>
 */
// every single-cut position (and cuts at every byte for one case) of composite responses, then a probe
import { header, request, startSluice, stop } from "./lib.ts";
const [target = "binary", base = "21500"] = process.argv.slice(2);
const s = await startSluice(target, Number(base));
const T = "tSPLITxxxxxx"; // 12 chars, replaced per request
const wires: [string, string, number][] = [
  ["1xx+chunked", `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nX-Token: ${T}\r\nTransfer-Encoding: chunked\r\n\r\n4;e=1\r\ntok=\r\nc\r\n${T}\r\n0\r\nX-Trailer: 1\r\n\r\n`, 200],
  ["cl", `HTTP/1.1 200 OK\r\nX-Token: ${T}\r\nContent-Length: 16\r\n\r\ntok=${T}`, 200],
  ["204", `HTTP/1.1 204 No Content\r\nX-Token: ${T}\r\n\r\n`, 204],
];
let n = 0, bad = 0;
for (const [name, wire, status] of wires) {
  const cutsList: string[] = [];
  for (let k = 1; k < wire.length; k++) cutsList.push(String(k));
  cutsList.push(Array.from({ length: wire.length - 1 }, (_, i) => i + 1).join(",")); // a byte at a time
  for (const cuts of cutsList) {
    const t = `t${String(++n).padStart(5, "0")}xsplit`;
    const hex = Buffer.from(wire.replaceAll(T, t), "latin1").toString("hex");
    const r = await request(s.http, "GET", `/raw/${t}/${hex}`, { headers: `x-dirty: 0\r\nx-cuts: ${cuts}\r\n` });
    const tp = `t${String(++n).padStart(5, "0")}xprobe`;
    const p = await request(s.http, "POST", `/ok/${tp}`, { body: "p" });
    const okBody = status === 204 ? r.body === "" : r.body === `tok=${t}`;
    if (r.status !== status || header(r, "x-token") !== t || !okBody || r.problems.length || p.status !== 200 || header(p, "x-token") !== tp) {
      bad++;
      console.log(`!! ${name} cuts=${cuts.slice(0, 30)} -> ${r.status} ${header(r, "x-token")} ${JSON.stringify(r.body)} ${r.problems} | probe ${p.status} ${header(p, "x-token")}`);
    }
  }
}
console.log(`${target}: ${n / 2} split cases, ${bad} bad`);
await stop(s);
console.log("stderr:", s.stderr.join("").slice(0, 500));
process.exit(bad === 0 ? 0 : 1);
