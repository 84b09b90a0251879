/**
 * A bounded request fuzzer for sluice (fixed seed, bounded count and time): sends generated
 * and mutated HTTP/1.1 requests over raw TCP to a running sluice whose child is
 * scripts/fuzz/requests/recorder.py, then checks what the recorder got against what was sent.
 *
 *   bun scripts/fuzz/requests/fuzz.ts --port P --admin A --record FILE --pid SLUICE_PID [--seed 1] [--count 400]
 *     [--seconds 240] [--parallel 1] [--only INDEX [--dump BYTES]]
 *
 * scripts/fuzz/requests/restart.sh starts both targets for it (binary on BASE_PORT+1, admin +3;
 * Deno on BASE_PORT+11, admin +13; BASE_PORT 20000 by default; records in /tmp/rf-b.rec and
 * /tmp/rf-d.rec, PIDs in /tmp/rf-[bd].pid). See scripts/fuzz/README.md.
 * Notes (not findings): Bun normalizes targets (docs/runtime-notes.md), both runtimes drop a
 * GET's or HEAD's body, a HEAD with a body gets none upstream.
 *
 * Findings (printed as JSON lines, "finding" set): a request the recorder could not parse,
 * one client request seen twice upstream or under another target, a Host or header that
 * changed or appeared, a 5xx, no answer within 10 s, sluice gone, in-flight not back to 0,
 * fds grown, a client connection sluice left in CLOSE-WAIT. The recorder's "Connection reset"
 * and "eof mid-request" records of a client that went away midway or half-closed, of an app
 * that answered before the body's end, or of a chunked body answered 400 (by the runtime) or
 * 413 (over --max-request-body) midway are requests sluice cut on purpose: notes, not findings.
 */

import { connect, type Socket } from "node:net";
import { readdirSync, readFileSync } from "node:fs";
import { CLIENT_ADDRESS_HEADERS } from "../../../src/forwarded-headers.ts";
import { concatBytes, latin1Encode } from "../../../src/wire-bytes.ts";
import { mulberry32 } from "../random.ts";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ""), process.argv[i + 1]!);
const PORT = Number(args.get("port"));
const ADMIN = Number(args.get("admin"));
const RECORD = args.get("record")!;
const PID = Number(args.get("pid"));
const SEED = Number(args.get("seed") ?? 1);
const COUNT = Number(args.get("count") ?? 400);
const SECONDS = Number(args.get("seconds") ?? 240);
const PARALLEL = Number(args.get("parallel") ?? 1);
const ONLY = args.get("only") === undefined ? undefined : Number(args.get("only"));

const QUERY_CHARS = "-._~!$&()*+,;=:@0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HOP = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];
const SET_BY_SLUICE = ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme", "x-forwarded-prefix", "x-request-id", "x-request-start", "x-sendfile-type", "traceparent", "tracestate", "content-length", "host",
  // Other proxies' client-address headers (X-Real-IP ...): dropped unless from --trusted-proxies (README, Proxying).
  ...CLIENT_ADDRESS_HEADERS];

interface Case {
  index: number;
  method: string;
  target: string;
  headers: [string, string][];
  /** Body bytes as sent on the wire (framed), and the payload the app should get. */
  wire: Uint8Array;
  payload: Uint8Array;
  framing: "none" | "length" | "chunked";
  write: "one" | "bytes" | "splits";
  halfClose: boolean;
  /** The client goes away after this many body bytes (undefined: it sends the whole request). */
  abortAfter: number | undefined;
  tags: string[];
}

function generate(index: number, rnd: () => number): Case {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const chance = (p: number) => rnd() < p;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const tags: string[] = [];
  const method = pick(["GET", "GET", "HEAD", "OPTIONS", "POST", "POST", "PUT", "DELETE", "PATCH", "TRACE"]);
  let target = `/f/${index}`;
  if (chance(0.1)) {
    target += "/" + "a".repeat(pick([1000, 4000, 8000, 15000]));
    tags.push("long-path");
  }
  if (chance(0.3)) target += "?" + Array.from({ length: int(1, 5) }, () => `${randChars(rnd, QUERY_CHARS, 6)}=${encodeURIComponent(randToken(rnd, 8)).replace(/'/g, "%27")}`).join("&");
  const headers: [string, string][] = [["Host", chance(0.9) ? "fuzz.example" : `fuzz.example:${int(1, 65535)}`]];
  headers.push(["X-Request-Id", `fz-${index}`]);
  // Random extra headers.
  const extra = chance(0.05) ? int(60, 110) : int(0, 8);
  if (extra > 50) tags.push("many-headers");
  for (let i = 0; i < extra; i++) headers.push([`X-${randToken(rnd, int(1, 20))}-${i}`, randValue(rnd, pick([0, 5, 40, 300]))]);
  if (chance(0.03)) {
    headers.push(["X-Big", "v".repeat(int(4000, 12000))]);
    tags.push("big-value");
  }
  if (chance(0.15)) {
    const value = randValue(rnd, 20, true);
    headers.push(["X-Odd", value]);
    tags.push("odd-bytes");
  }
  if (chance(0.1)) {
    // The same name twice.
    headers.push(["X-Twice", "one"], ["x-twice", "two"]);
    tags.push("repeated");
  }
  // Body.
  let framing: Case["framing"] = "none";
  const bodyMethods = ["POST", "PUT", "PATCH", "DELETE"];
  const withBody = bodyMethods.includes(method) ? chance(0.8) : chance(0.25);
  let payload: Uint8Array = new Uint8Array(0);
  let wire: Uint8Array = new Uint8Array(0);
  if (withBody) {
    if (!bodyMethods.includes(method)) tags.push(`body-on-${method}`);
    payload = randBytes(rnd, pick([0, 1, 5, 100, 3000, 70000]));
    if (chance(0.5)) {
      framing = "length";
      headers.push(["Content-Length", String(payload.byteLength)]);
      wire = payload;
    } else {
      framing = "chunked";
      headers.push(["Transfer-Encoding", "chunked"]);
      const parts: (string | Uint8Array)[] = [];
      let at = 0;
      while (at < payload.byteLength) {
        const size = Math.min(payload.byteLength - at, pick([1, 7, 100, 4096, 65536]));
        let sizeLine = size.toString(16);
        if (chance(0.2)) sizeLine = sizeLine.toUpperCase().padStart(int(1, 6), "0");
        if (chance(0.2)) {
          sizeLine += pick([";ext", ";ext=1", ';ext="q"', ";a=b;c", " ;x"]);
          tags.push("chunk-ext");
        }
        parts.push(`${sizeLine}\r\n`, payload.subarray(at, at + size), "\r\n");
        at += size;
      }
      let last = pick(["0", "0", "000", "0;last=1"]);
      if (last !== "0") tags.push("odd-last-chunk");
      parts.push(`${last}\r\n`);
      if (chance(0.2)) {
        parts.push(`X-Trailer: ${randToken(rnd, 5)}\r\n`);
        headers.push(["Trailer", "X-Trailer"]);
        tags.push("trailer");
      }
      parts.push("\r\n");
      wire = concat(parts);
      last = "";
    }
  }
  if (chance(0.1)) {
    headers.push(["TE", "trailers"]);
    tags.push("te-trailers");
  }
  if (chance(0.2)) {
    const names = headers.map(([n]) => n.toLowerCase());
    const listed = Array.from({ length: int(1, 4) }, () => pick([...names, "host", "content-length", "transfer-encoding", "x-request-id", "x-forwarded-for", "keep-alive", "close", "upgrade", "te"]));
    headers.push(["Connection", [...new Set(listed)].join(", ")]);
    tags.push("connection-lists");
  }
  if (chance(0.08)) {
    const kind = pick(["h2c", "ws-bad-version", "foo"]);
    if (kind === "h2c") headers.push(["Connection", "Upgrade, HTTP2-Settings"], ["Upgrade", "h2c"], ["HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"]);
    else if (kind === "ws-bad-version") headers.push(["Connection", "Upgrade"], ["Upgrade", "websocket"], ["Sec-WebSocket-Version", "7"], ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="]);
    else headers.push(["Connection", "upgrade"], ["Upgrade", "foo/2"]);
    tags.push(`upgrade-${kind}`);
  }
  if (chance(0.1)) {
    headers.push(pick([["Forwarded", "for=1.2.3.4;proto=https"], ["X-Forwarded-For", "1.2.3.4, 5.6.7.8"], ["X-Forwarded-Proto", "https"], ["X-Forwarded-Host", "evil.example"], ["X-Forwarded-Port", "443"], ["X-Real-IP", "9.9.9.9"]] as [string, string][]));
    tags.push("forwarded");
  }
  if (chance(0.05)) {
    headers.push(["Max-Forwards", pick(["0", "1", "10"])]);
    tags.push("max-forwards");
  }
  if (chance(0.05)) {
    headers.push(["Expect", "100-continue"]);
    tags.push("expect");
  }
  // Headers sluice itself acts on: the cache, compression, ranges, conditionals, tracing.
  if (chance(0.3)) {
    if (chance(0.5)) target = target.replace(`/f/${index}`, `/f/${index}/cache/${int(0, 3)}`);
    else target = target.replace(`/f/${index}`, `/static/${pick(["a.txt", "big.html", "missing.txt", "..%2fa.txt", "dir/", "dir"])}?f=${index}`);
    tags.push("semantic");
    for (let k = int(1, 4); k > 0; k--) headers.push(pick(SEMANTIC)(rnd));
  }
  // Shuffle (Host first is not required): Fisher-Yates, one number per field. A sort with a
  // random comparator drew a varying count of them under Bun (40 or 44 for 15 fields, from
  // one run to the next), so a case and all after it differed and a seed did not replay.
  if (chance(0.3)) {
    for (let k = headers.length - 1; k > 0; k--) {
      const j = Math.floor(rnd() * (k + 1));
      [headers[k], headers[j]] = [headers[j]!, headers[k]!];
    }
  }
  const write: Case["write"] = wire.byteLength + target.length < 3000 && chance(0.1) ? "bytes" : chance(0.3) ? "splits" : "one";
  const halfClose = chance(0.1);
  const abortAfter = wire.byteLength > 10 && chance(0.1) ? Math.floor(rnd() * wire.byteLength) : undefined;
  if (abortAfter !== undefined) tags.push("client-aborts");
  if (wire.byteLength > 0 && chance(0.1)) {
    target = target.replace(`/f/${index}`, `/f/${index}/early`);
    tags.push("app-answers-early");
  }
  return { index, method, target, headers, wire, payload, framing, write, halfClose, abortAfter, tags };
}

/** Header makers for what sluice reads itself, with values odd, huge, empty or valid. */
const SEMANTIC: ((rnd: () => number) => [string, string])[] = [
  (rnd) => ["Accept-Encoding", oneOf(rnd, ["gzip", "br", "zstd", "gzip;q=0", "br;q=abc", "*", "*;q=0", "identity;q=0", "gzip, br;q=1.5, zstd;q=-1", ";;,,", "gzip;q=0.5;q=1", "x".repeat(5000), "", "GZIP", "br,br,br,br,br"])],
  (rnd) => ["Range", oneOf(rnd, ["bytes=0-0", "bytes=-1", "bytes=0-", "bytes=5-2", "bytes=-0", "bytes=0-0,1-1,2-2", "bytes=99999999999999999999-", "bytes=1-1e3", "bytes=" + "0-0,".repeat(300), "items=0-5", "bytes = 0-1", "bytes=0x1-2", "bytes=-99999999999999999999", ""])],
  (rnd) => ["If-None-Match", oneOf(rnd, ['"v1"', 'W/"v1"', "*", '"v1", "v2"', "v1", '"', "W/", '"' + "x".repeat(3000) + '"', ""])],
  (rnd) => ["If-Modified-Since", oneOf(rnd, ["Sun, 06 Dec 2026 10:00:00 GMT", "Sun, 06 Dec 2099 10:00:00 GMT", "yesterday", "Sun, 99 Dec 2026 99:99:99 GMT", "0", "", "Sunday, 06-Dec-26 10:00:00 GMT"])],
  (rnd) => ["If-Range", oneOf(rnd, ['"v1"', 'W/"v1"', "Sun, 06 Dec 2026 10:00:00 GMT", "garbage", ""])],
  (rnd) => ["Cache-Control", oneOf(rnd, ["no-cache", "no-store", "max-age=0", "max-age=-1", "max-age=99999999999999999999", "max-stale", "min-fresh=abc", "only-if-cached", 'no-cache="set-cookie"', ",,,", "max-age=1, max-age=2"])],
  (rnd) => ["Pragma", oneOf(rnd, ["no-cache", "x", ""])],
  (rnd) => ["traceparent", oneOf(rnd, ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "00-XYZ-00f067aa0ba902b7-01", "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz"])],
  (rnd) => ["tracestate", oneOf(rnd, ["a=b", "a=b,c=d", "=", ",,,", "x".repeat(600), "k=" + "v".repeat(300)])],
  (rnd) => ["Cookie", oneOf(rnd, ["a=b", "a=b; c=d", ";;;", "x".repeat(4000)])],
  (rnd) => ["Authorization", oneOf(rnd, ["Basic Zm9vOmJhcg==", "Bearer x", ""])],
  (rnd) => ["X-Forwarded-Host", oneOf(rnd, ["evil.example", "evil.example/path", "evil.example:99999", "a b", "", "evil.example?x"])],
  (rnd) => ["X-Forwarded-Proto", oneOf(rnd, ["https", "HTTPS", "https://x", "gopher", "", "https, http"])],
  (rnd) => ["X-Forwarded-For", oneOf(rnd, ["1.2.3.4", "unknown", "::1", "[::1]:80", "1.2.3.4, , ,", "x".repeat(2000), ""])],
  (rnd) => ["Forwarded", oneOf(rnd, ["for=1.2.3.4;proto=https;host=evil.example", 'for="[::1]:80"', "garbage", ";;;", ""])],
];

function oneOf<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)]!;
}

function randChars(rnd: () => number, chars: string, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += chars[Math.floor(rnd() * chars.length)];
  return s;
}

function randToken(rnd: () => number, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += TOKEN_CHARS[Math.floor(rnd() * TOKEN_CHARS.length)];
  return s;
}

/** A field value: VCHAR and inner SP/HTAB; with `odd`, obs-text and leading/trailing blanks. */
function randValue(rnd: () => number, length: number, odd = false): string {
  let s = "";
  for (let i = 0; i < length; i++) {
    const r = rnd();
    if (odd && r < 0.3) s += String.fromCharCode(0x80 + Math.floor(rnd() * 128));
    else if (r < 0.4) s += rnd() < 0.5 ? " " : "\t";
    else s += String.fromCharCode(0x21 + Math.floor(rnd() * 94));
  }
  if (odd && rnd() < 0.5) s = ` \t${s}\t `;
  return s;
}

function randBytes(rnd: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(rnd() * 256);
  // Make some bodies look like requests.
  if (length > 60 && rnd() < 0.3) out.set(latin1Encode("\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
  return out;
}

function concat(parts: (string | Uint8Array)[]): Uint8Array {
  return concatBytes(parts.map((p) => (typeof p === "string" ? latin1Encode(p) : p)));
}

function encode(c: Case): Uint8Array {
  let head = `${c.method} ${c.target} HTTP/1.1\r\n`;
  for (const [n, v] of c.headers) head += `${n}: ${v}\r\n`;
  return concat([head + "\r\n", c.abortAfter === undefined ? c.wire : c.wire.subarray(0, c.abortAfter)]);
}

interface Answer {
  /** The client's own port, to find its connection in ss(8). */
  localPort?: number | undefined;
  status: number | undefined;
  bytes: string;
  timedOut: boolean;
  error?: string | undefined;
}

/** Sends `bytes` the case's way and reads one response (until complete, close or 10 s). */
function exchange(c: Case, bytes: Uint8Array, rnd: () => number): Promise<Answer> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: "127.0.0.1", port: PORT });
    const chunks: Buffer[] = [];
    let done = false;
    let localPort: number | undefined;
    const finish = (timedOut: boolean, error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      resolve({ localPort, status: finalStatus(text), bytes: text.slice(0, 300), timedOut, error });
    };
    const timer = setTimeout(() => finish(true), 10_000);
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      const text = Buffer.concat(chunks).toString("latin1");
      if (isComplete(text, c.method)) finish(false);
    });
    socket.on("error", (e) => finish(false, String(e)));
    socket.on("close", () => finish(false));
    socket.on("connect", async () => {
      localPort = socket.localPort;
      try {
        if (c.write === "one") socket.write(bytes);
        else if (c.write === "bytes") {
          for (let i = 0; i < bytes.byteLength && !done; i++) {
            socket.write(bytes.subarray(i, i + 1));
            if (i % 16 === 0) await Bun.sleep(1);
          }
        } else {
          let at = 0;
          while (at < bytes.byteLength && !done) {
            const n = 1 + Math.floor(rnd() * 2000);
            socket.write(bytes.subarray(at, at + n));
            at += n;
            await Bun.sleep(Math.floor(rnd() * 3));
          }
        }
        if (c.abortAfter !== undefined) {
          await Bun.sleep(Math.floor(rnd() * 100));
          return finish(false, "client aborted");
        }
        if (c.halfClose && !done) socket.end();
      } catch (e) {
        finish(false, String(e));
      }
    });
  });
}

/**
 * The status of the response after any 1xx (a 100 Continue, then the answer): the last 1xx
 * when nothing followed it, undefined when no status line came.
 */
function finalStatus(text: string): number | undefined {
  let status: number | undefined;
  for (;;) {
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
    if (!match) return status;
    status = Number(match[1]);
    const end = text.indexOf("\r\n\r\n");
    if (status >= 200 || end < 0) return status;
    text = text.slice(end + 4);
  }
}

/** True once `text` holds one whole response (Content-Length or chunked or bodiless). */
function isComplete(text: string, method: string): boolean {
  for (;;) {
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) return false;
    const head = text.slice(0, end);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]);
    const rest = text.slice(end + 4);
    if (status >= 100 && status < 200) {
      text = rest;
      continue;
    }
    if (method === "HEAD" || status === 204 || status === 304) return true;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (length) return rest.length >= Number(length[1]);
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) return /(^|\r\n)0\r\n\r\n$/.test(rest);
    return false;
  }
}

/** The case a request head came from: its target is /f/<index>..., or a static file's with ?f=<index>. */
function caseIndexOf(head: string): number | undefined {
  const match = /^\S+ \/(?:f\/(\d+)|static\/[^ ?]*\?(?:[^ ]*&)?f=(\d+))/.exec(head);
  return match ? Number(match[1] ?? match[2]) : undefined;
}

function readRecords(): Record<string, unknown>[] {
  return readFileSync(RECORD, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** The client ports of connections to PORT that sluice leaves in CLOSE-WAIT (state 08 of /proc/net/tcp). */
function closeWaitPeers(): number[] {
  const peers: number[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, local, remote, state] = line.trim().split(/\s+/);
    if (state === "08" && Number.parseInt(local!.split(":")[1]!, 16) === PORT) peers.push(Number.parseInt(remote!.split(":")[1]!, 16));
  }
  return peers;
}

function fdCount(): number {
  return readdirSync(`/proc/${PID}/fd`).length;
}

async function inFlight(): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${ADMIN}/metrics`)).text();
  return /^sluice_requests_in_flight (\S+)/m.exec(text)?.[1] ?? "?";
}

function alive(): boolean {
  try {
    process.kill(PID, 0);
    return true;
  } catch {
    return false;
  }
}

let findings = 0;
function report(obj: Record<string, unknown>) {
  if ("finding" in obj) findings++;
  console.log(JSON.stringify(obj));
}

const started = Date.now();
const fdsBefore = fdCount();
const recordsBefore = readRecords().length;
const answers = new Map<number, { c: Case; a: Answer }>();
let sent = 0;
let next = 0;
let stopped = false;
/** One client at a time per worker: with several, the upstream pool carries interleaved requests. */
async function worker(): Promise<void> {
  while (!stopped) {
    const i = next++;
    if (i >= COUNT || Date.now() - started >= SECONDS * 1000) return;
    const rnd = mulberry32(SEED * 1_000_003 + i);
    const c = generate(i, rnd);
    if (ONLY !== undefined && i !== ONLY) continue;
    if (args.has("describe")) {
      console.log(JSON.stringify({ index: i, method: c.method, framing: c.framing, bodyBytes: c.wire.byteLength, write: c.write, halfClose: c.halfClose, abortAfter: c.abortAfter, tags: c.tags }));
      continue;
    }
    const bytes = encode(c);
    if (ONLY !== undefined && args.has("dump")) console.log(JSON.stringify(Buffer.from(bytes.subarray(0, Number(args.get("dump")))).toString("latin1")));
    const a = await exchange(c, bytes, rnd);
    if (ONLY !== undefined) console.log(JSON.stringify({ write: c.write, halfClose: c.halfClose, tags: c.tags, answer: a }));
    sent++;
    answers.set(i, { c, a });
    if (a.timedOut) report({ finding: "no answer in 10 s", index: i, tags: c.tags, write: c.write, halfClose: c.halfClose, got: a.bytes });
    if (a.status !== undefined && a.status >= 500) report({ finding: `status ${a.status}`, index: i, tags: c.tags, method: c.method, framing: c.framing, got: a.bytes });
    if (!alive()) {
      report({ finding: "sluice exited", index: i });
      stopped = true;
    }
  }
}
await Promise.all(Array.from({ length: PARALLEL }, worker));
await Bun.sleep(1500);
// Upstream side.
const records = readRecords().slice(recordsBefore);
const resets: string[] = [];
const byIndex = new Map<number, Record<string, unknown>[]>();
for (const r of records) {
  if (r.error) {
    if (String(r.error).startsWith("oserror") && r.head === "") {
      // An idle upstream connection reset by sluice: which request was its last?
      const last = /^\/f\/(\d+)/.exec(String(r.last ?? ""));
      const prior = last ? answers.get(Number(last[1])) : undefined;
      resets.push(prior ? `${prior.c.method} ${prior.c.framing} ${prior.a.status} ${prior.c.write}${prior.c.halfClose ? " half-close" : ""} ${prior.c.tags.join(",")}` : "?");
      continue;
    }
    // A request sluice cut on purpose is expected (docs/runtime-notes.md): its client went away
    // or half-closed; the app answered before the body was all sent (sluice gives up the rest
    // and the connection); or the runtime refused the client's chunked body midway with its
    // own 400 (Bun 1.4.5: a trailer section, oven-sh/bun#32887, or blanks around a chunk
    // extension's ";" or "=", which RFC 9112 allows and Deno takes), which ends the exchange;
    // or its chunked body went over --max-request-body, which only its bytes can tell (413).
    const index = caseIndexOf(String(r.head || r.rest || ""));
    const sent = index === undefined ? undefined : answers.get(index);
    const cause = sent?.c;
    const cut = /^eof mid-request|Connection reset/.test(String(r.error));
    const why = !cut || cause === undefined
      ? undefined
      : cause.abortAfter !== undefined || cause.halfClose
      ? "its client went away or half-closed"
      : cause.tags.includes("app-answers-early")
      ? "the app answered before the body was all sent"
      : cause.framing === "chunked" && sent!.a.status === 400
      ? "the runtime refused the client's chunked body (400)"
      : cause.framing === "chunked" && sent!.a.status === 413
      ? "its chunked body went over --max-request-body (413)"
      : undefined;
    report(why !== undefined ? { note: `cut upstream: ${why}`, index, error: r.error } : { finding: "recorder could not parse", record: r });
    continue;
  }
  const m = /^\/f\/(\d+)(?:[/?]|$)/.exec(String(r.target));
  if (!m) {
    if (r.target !== "/" && !/^\/(f|static)\//.test(String(r.target))) report({ finding: "unexpected upstream request", record: { ...r, headers: undefined } });
    continue;
  }
  const list = byIndex.get(Number(m[1])) ?? [];
  list.push(r);
  byIndex.set(Number(m[1]), list);
}
const statuses: Record<string, number> = {};
for (const [i, { c, a }] of answers) {
  statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
  const seen = byIndex.get(i) ?? [];
  if (seen.length > 1) report({ finding: "forwarded more than once", index: i, count: seen.length, tags: c.tags });
  const r = seen[0];
  if (c.abortAfter !== undefined) continue; // whatever reached the app, the recorder checked its framing
  if (c.tags.includes("app-answers-early")) {
    if (seen.length > 1) report({ finding: "early-answered request seen more than once", index: i, count: seen.length });
    continue;
  }
  if (!r) {
    if (c.target.startsWith("/static/") || c.target.includes("/cache/")) continue; // sluice's own answers
    if (a.status === 200) report({ finding: "answered 200 but never reached the app", index: i, tags: c.tags });
    else if (a.status === undefined && !c.halfClose) report({ note: "no response, not forwarded", index: i, tags: c.tags, method: c.method, got: a.bytes, error: a.error });
    else report({ note: `not forwarded: ${a.status}`, index: i, tags: c.tags, method: c.method, got: a.bytes.slice(0, 120) });
    continue;
  }
  if (r.target !== c.target) report({ finding: "target changed", index: i, sent: c.target.slice(0, 100), got: String(r.target).slice(0, 100) });
  if (r.method !== c.method) report({ finding: "method changed", index: i, sent: c.method, got: r.method });
  const got = r.headers as [string, string][];
  const gotMap = new Map<string, string[]>();
  for (const [n, v] of got) gotMap.set(n.toLowerCase(), [...(gotMap.get(n.toLowerCase()) ?? []), v]);
  const hosts = gotMap.get("host") ?? [];
  if (hosts.length !== 1 || hosts[0] !== c.headers.find(([n]) => n.toLowerCase() === "host")![1]) {
    report({ finding: "host changed", index: i, tags: c.tags, got: hosts });
  }
  // The body the app got.
  const expectsBody = c.framing !== "none" && (c.method !== "GET" && c.method !== "HEAD" || true);
  if (c.payload.byteLength > 0 && expectsBody) {
    const want = Buffer.from(c.payload.subarray(0, 200)).toString("latin1");
    if (r.body_len !== c.payload.byteLength || r.body !== want) {
      report({ note: "body differs", index: i, method: c.method, framing: c.framing, sent: c.payload.byteLength, got: r.body_len, upstreamFraming: r.framing, tags: c.tags });
    }
  }
  // Every end-to-end header of the client's should arrive.
  const connectionListed = new Set(c.headers.filter(([n]) => n.toLowerCase() === "connection").flatMap(([, v]) => v.split(",").map((s) => s.trim().toLowerCase())));
  const sentMap = new Map<string, string[]>();
  for (const [n, v] of c.headers) sentMap.set(n.toLowerCase(), [...(sentMap.get(n.toLowerCase()) ?? []), v.replace(/^[ \t]+|[ \t]+$/g, "")]);
  for (const [name, values] of sentMap) {
    if (HOP.includes(name) || SET_BY_SLUICE.includes(name)) continue;
    if (connectionListed.has(name)) {
      if (gotMap.has(name)) report({ finding: "connection-listed header forwarded", index: i, name });
      continue;
    }
    const arrived = gotMap.get(name);
    if (!arrived) report({ finding: "header dropped", index: i, name, tags: c.tags });
    else if (arrived.join(", ") !== values.join(", ")) report({ note: "header value changed", index: i, name, sent: values.join(", ").slice(0, 80), got: arrived.join(", ").slice(0, 80) });
  }
  for (const name of gotMap.keys()) {
    if (!sentMap.has(name) && !SET_BY_SLUICE.includes(name) && name !== "transfer-encoding") report({ finding: "header added", index: i, name });
  }
}
await Bun.sleep(500);
const fdsAfter = fdCount();
const flight = await inFlight();
if (flight !== "0") report({ finding: "in-flight not 0", value: flight });
if (fdsAfter > fdsBefore + 4) report({ finding: "fds grew", before: fdsBefore, after: fdsAfter });
const stuckPorts = closeWaitPeers();
for (const [i, { c, a }] of answers) {
  if (a.localPort !== undefined && stuckPorts.includes(a.localPort)) {
    report({ finding: "client connection left in CLOSE-WAIT", index: i, method: c.method, framing: c.framing, write: c.write, halfClose: c.halfClose, abortAfter: c.abortAfter, status: a.status, tags: c.tags });
  }
}
if (resets.length > 0) report({ note: "idle upstream connections reset after", resets });
report({ summary: true, sent, seconds: (Date.now() - started) / 1000, statuses, fdsBefore, fdsAfter, inFlight: flight, upstreamRequests: records.length });
process.exit(findings === 0 ? 0 : 1);
