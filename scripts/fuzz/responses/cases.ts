/**
 * Hand-picked odd app responses through sluice (started here, on ports base..base+2, with
 * scripts/fuzz/responses/app.py as its child), each followed by a probe POST that must get its own
 * token: framing the upstream client got wrong shows as another request's token or a 502.
 *
 *   bun scripts/fuzz/responses/cases.ts <binary|deno> <basePort> [concurrency]
 *
 * Expected, not findings: a 1xx with a "body" (those bytes are the next response, RFC 9112),
 * bytes of a close-delimited body, and a probe 502 after the app closed or reset a keep-alive
 * connection without saying so (a POST is never sent twice). REUSED-DIRTY lines list
 * connections the app itself marked suspect (early answers): a hint, not a verdict.
 * Set FULL=1 to keep compression and the cache on.
 */
import { appState, fds, header, metrics, OUT, request, startSluice, stop, type Parsed } from "./lib.ts";

const [target = "binary", baseArg = "21000", concArg = "1"] = process.argv.slice(2);
const s = await startSluice(target, Number(baseArg));
const conc = Number(concArg);
let seq = 0;
const findings: string[] = [];
const tok = () => `t${++seq}x${Math.random().toString(36).slice(2, 8)}`;

type Expect = number[] | "any";
const CASES: [string, string, Expect, string?][] = [
  // [case, method, allowed statuses, arg]
  ["ok", "GET", [200]], ["ok", "HEAD", [200]], ["chunked", "GET", [200]],
  ["cl-extra", "GET", [200]], ["204-body", "GET", [204]], ["304-body", "GET", [304]], ["204-cl", "GET", [204]], ["304-cl", "GET", [304]],
  ["204-te", "GET", [204]], ["304-te", "GET", [304]], ["204-cl0", "GET", [204]], ["head-body", "HEAD", [200]], ["head-te", "HEAD", [200]],
  ["1xx", "GET", [200]], ["1xx-body", "GET", [200, 502]], ["1xx-many", "GET", [200]], ["101", "GET", [502]],
  ["cl-te", "GET", [200, 502]], ["te-cl", "GET", [200, 502]],
  ...["eq", "diff", "list", "list-diff", "listnosp", "empty", "plus", "zeros", "space", "tab", "eq3", "big", "neg", "hex", "dot", "emptyval", "listempty"]
    .map((k) => [`cl-multi-${k}`, "GET", "any"] as [string, string, Expect]),
  ["chunked-trailers", "GET", [200]], ["chunked-upper", "GET", [200]], ["chunked-te2", "GET", [200, 502]], ["chunked-lf", "GET", [502]],
  ["chunked-extra", "GET", [200]], ["chunked-ws", "GET", [200, 502]], ["chunked-bigsize", "GET", [502, 200]], ["chunked-neg", "GET", [502]],
  ["chunked-short", "GET", "any"],
  ["close-delim", "GET", [200]], ["close-delim-ka", "GET", [200]],
  ["conn-close", "GET", [200]], ["conn-close-upper", "GET", [200]], ["conn-close-mixed", "GET", [200]], ["conn-close-nosp", "GET", [200]], ["conn-close-tab", "GET", [200]],
  ["conn-close", "GET", [200], "close"], ["conn-close-upper", "GET", [200], "close"],
  ["http10", "GET", [200]], ["http10-ka", "GET", [200]], ["http10-close", "GET", [200]],
  ...[1, 5, 17, 30, 45, 60, 80].map((k) => ["1xx-split", "GET", [200], `${k},${k + 1},${k + 20}`] as [string, string, Expect, string]),
];

/**
 * Cases where the app's EVIL bytes reach the client as RFC 9112 says they must: a 1xx's "body"
 * is the next response, and a close-delimited body holds whatever the app wrote.
 */
const EVIL_EXPECTED = new Set(["1xx-body", "close-delim-ka"]);

async function one(kase: string, method: string, expect: Expect, arg?: string, body?: string): Promise<void> {
  const t = tok();
  const path = `/${kase}/${t}${arg ? `/${arg}` : ""}`;
  const r = await request(s.http, method, path, { body });
  check(`${method} ${path}`, r, t, expect, EVIL_EXPECTED.has(kase));
  // the probe: a POST (never retried) right after, likely on the same pooled connection
  const t2 = tok();
  const p = await request(s.http, "POST", `/ok/${t2}`, { body: "probe" });
  check(`  probe after ${kase}${arg ? "/" + arg : ""}`, p, t2, [200]);
}

function check(what: string, r: Parsed, t: string, expect: Expect, evilExpected = false): void {
  const got = header(r, "x-token");
  const bad: string[] = [...r.problems];
  if (got !== undefined && got !== t && !(evilExpected && got === "EVIL")) bad.push(`DESYNC: X-Token ${got}, expected ${t}`);
  if (r.body.includes("EVIL") && got === t && !evilExpected) bad.push("body holds EVIL");
  if (expect !== "any" && !expect.includes(r.status)) bad.push(`status ${r.status} not in ${expect}`);
  if (r.status === 200 && got === undefined) bad.push("200 without X-Token");
  const line = `${what} -> ${r.status} tok=${got} conn=${header(r, "x-conn")} ${r.ms.toFixed(0)}ms body=${JSON.stringify(r.body.slice(0, 60))}`;
  if (bad.length) findings.push(`${line}\n     !! ${bad.join("; ")}`);
  console.log(line + (bad.length ? `  !! ${bad.join("; ")}` : ""));
}

const before = fds(s.proc.pid!);
if (conc === 1) {
  for (const [k, m, e, a] of CASES) await one(k, m, e, a);
  // early responses while uploading; a probe may get a 502 where the app closed or reset a
  // keep-alive connection without saying so (a POST is never sent twice)
  for (const a of ["drain", "close", "unread", "rst"]) {
    const probeStatuses = a === "close" || a === "rst" ? [200, 502] : [200];
    const t = tok();
    const r = await request(s.http, "POST", `/early/${t}/${a}`, { body: "x".repeat(200_000) });
    check(`POST /early/${a} (200 kB)`, r, t, a === "rst" ? [401, 502] : [401]);
    const t2 = tok();
    check(`  probe after early/${a}`, await request(s.http, "POST", `/ok/${t2}`, { body: "probe" }), t2, probeStatuses);
    const t3 = tok();
    const r3 = await request(s.http, "POST", `/early/${t3}/${a}`, { body: "small" });
    check(`POST /early/${a} (small)`, r3, t3, a === "rst" ? [401, 502] : [401]);
    const t4 = tok();
    check(`  probe after early/${a} small`, await request(s.http, "POST", `/ok/${t4}`, { body: "probe" }), t4, probeStatuses);
  }
  // unsolicited bytes on an idle pooled connection, then wait, then probe
  {
    const t = tok();
    check("GET /unsolicited-idle", await request(s.http, "GET", `/unsolicited-idle/${t}`), t, [200]);
    await Bun.sleep(300);
    const t2 = tok();
    check("  probe after unsolicited-idle (300ms later)", await request(s.http, "POST", `/ok/${t2}`, { body: "p" }), t2, [200]);
  }
} else {
  // several at once: odd cases mixed with probes
  for (let round = 0; round < 6; round++) {
    const batch = CASES.slice();
    await Promise.all(Array.from({ length: conc }, async () => {
      while (batch.length) {
        const [k, m, e, a] = batch.shift()!;
        await one(k, m, e, a);
      }
    }));
  }
}
await Bun.sleep(500);
const m = await metrics(s);
const inflight = Object.entries(m).filter(([k]) => k.startsWith("sluice_requests_in_flight"));
console.log("in-flight", inflight, "fds before", before, "after", fds(s.proc.pid!));
const st = await appState(s);
console.log("app: connections", st.conns, "reused dirty", st.events.length);
// Hints, not findings: connections the app itself marked suspect that carried another request.
for (const e of st.events) console.log(`REUSED-DIRTY conn ${e.conn} (${e.why}) -> ${e.next}`);
for (const [k, v] of inflight) if (v !== 0) findings.push(`in-flight ${k} = ${v}`);
const upstream502 = s.records.filter((r) => r.status === 502);
console.log("502 records:", upstream502.map((r) => `${r.path} ${r.upstreamError}`).join("\n  "));
for (const r of upstream502) if (!r.upstreamError) findings.push(`502 without upstreamError: ${JSON.stringify(r)}`);
await Bun.write(`${OUT}/records-${target}-${conc}.json`, s.records.map((r) => JSON.stringify(r)).join("\n"));
const code = await stop(s);
console.log("exit", code, "stderr:", s.stderr.join("").slice(0, 3000));
if (s.other.length) console.log("non-JSON stdout:", s.other.slice(0, 20));
console.log(`\n==== ${target} conc=${conc}: ${findings.length} findings`);
for (const f of findings) console.log(f);
process.exit(findings.length === 0 ? 0 : 1);
