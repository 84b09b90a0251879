/**
 * @module The response cache through sluice, on the binary and under Deno: hits that never
 * reach the app, 304 from the cache, what is never stored, compressed variants, the limits
 * and thruster's CACHE_SIZE. The rules one by one are in tests/unit/cache-middleware.test.ts.
 */

import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { rawRequest, readMetrics, rssKiB, type Sluice, startSluice, TARGETS, tempDir, until } from "../harness.ts";

/** Status, X-Cache and body of a GET through sluice. */
async function get(sluice: Sluice, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${sluice.url}${path}`, { headers: { "accept-encoding": "identity", ...headers } });
  return { status: response.status, xCache: response.headers.get("x-cache"), body: await response.text(), headers: response.headers };
}

/** How often the app itself was asked for `path`. */
function appSaw(sluice: Sluice, path: string): Promise<number> {
  return appSawOn(sluice.targetPort, path);
}

/** How often the app on `port` (a rolling restart's new child) was asked for `path`. */
async function appSawOn(port: number, path: string): Promise<number> {
  const seen = (await (await fetch(`http://127.0.0.1:${port}/seen`)).json()) as string[];
  return seen.filter((p) => p === path).length;
}

/** sluice_cache_events_total by event. */
async function cacheEvents(sluice: Sluice): Promise<Record<string, number>> {
  const metrics = await readMetrics(sluice);
  const events: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics)) {
    const match = /^sluice_cache_events_total\{event="([a-z-]+)"\}$/.exec(name);
    if (match) events[match[1]!] = value;
  }
  return events;
}

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
}

describe.each(TARGETS)("response cache ($name)", (target) => {
  test("after a rolling restart emptied the cache, concurrent misses for a stored URL reach the new app once; a URL not stored does not make misses wait", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // Slow enough that all of a round arrive while its first request is on its way to the app.
    const path = "/cacheable?collapse&ms=800";
    const flipping = "/cacheable?flip&ms=800";
    for (const url of [path, flipping]) expect((await get(sluice, url)).xCache).toBe("miss");
    await until(async () => (await cacheEvents(sluice)).stored === 2, 10_000, "two stored answers");
    sluice.signal("SIGUSR2");
    expect(await sluice.waitFor("rolling-restart")).toMatchObject({ result: "ok", cacheCleared: 2 });
    const newPort = sluice.events("child.started").at(-1)!.port as number;
    const before = await cacheEvents(sluice);

    const answers = await Promise.all(Array.from({ length: 5 }, () => get(sluice, path)));
    expect(await appSawOn(newPort, path)).toBe(1);
    expect(answers.map((a) => [a.status, a.body.slice(0, 9)])).toEqual(Array(5).fill([200, "served 1\n"]));
    expect(answers.map((a) => a.xCache).sort()).toEqual(["hit", "hit", "hit", "hit", "miss"]);
    const after = await cacheEvents(sluice);
    expect([after.collapsed! - before.collapsed!, after.miss! - before.miss!]).toEqual([4, 1]);

    // An answer that is not stored releases those waiting at once, and each goes to the app:
    // side by side, not one after the other.
    const round = async (name: string) => {
      const answers = await Promise.all(
        Array.from({ length: 3 }, (_, i) => get(sluice, flipping, { "x-cache-control": "private", "x-request-id": `${name}-${i}` })),
      );
      expect(answers.map((a) => [a.status, a.xCache])).toEqual(Array(3).fill([200, "miss"]));
      const records = () => sluice.events("access").filter((r) => String(r.requestId).startsWith(`${name}-`));
      await until(() => records().length === 3, 10_000, `the access records of ${name}`);
      // The app's time for each, from the access records, in the order they ended.
      return records().map((r) => {
        const end = Date.parse(r["@timestamp"] as string);
        return { start: end - (r.upstreamMs as number), end };
      }).sort((a, b) => a.end - b.end);
    };
    const [first, second, third] = await round("flipped");
    expect(Math.min(second!.start, third!.start)).toBeGreaterThanOrEqual(first!.end - 50);
    expect(Math.max(second!.start, third!.start)).toBeLessThan(Math.min(second!.end, third!.end));
    // Now known as not stored, the URL's misses no longer wait: all three at the app at once.
    const again = await round("private");
    expect(Math.max(...again.map((a) => a.start))).toBeLessThan(Math.min(...again.map((a) => a.end)));
    expect(await appSawOn(newPort, flipping)).toBe(6);
    await stop(sluice);
  }, 60_000);

  test("a miss still on the old child at a rolling restart's switch is not joined: later misses collapse onto one to the new child", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--drain-timeout", "20s"] });
    const path = "/cacheable?across&ms=4000";
    expect((await get(sluice, path)).xCache).toBe("miss");
    await until(async () => (await cacheEvents(sluice)).stored === 1, 10_000, "the stored answer");
    sluice.signal("SIGUSR2");
    await sluice.waitFor((r) => r.event === "rolling-restart" && r.result === "ok");
    // The URL is known as stored, and no longer in the cache: this miss fills it, on child A.
    let oldAnswered = false;
    const onOld = get(sluice, path).finally(() => (oldAnswered = true));
    await until(async () => (await readMetrics(sluice))["sluice_requests_in_flight"] === 1, 10_000, "the miss in flight");
    const started = sluice.events("child.started").length;
    sluice.signal("SIGUSR2");
    await until(() => sluice.events("child.started").length > started, 20_000, "child B's start");
    const childB = sluice.events("child.started").at(-1)!.pid;
    // The switch: new requests reach child B.
    await until(async () => (await (await fetch(`${sluice.url}/pid`)).text()) === String(childB), 20_000, "child B to serve");
    const newPort = sluice.events("child.started").at(-1)!.port as number;
    // The switch came, and these three go, while the old child's miss is still on its way.
    expect(oldAnswered).toBe(false);
    const answers = await Promise.all(Array.from({ length: 3 }, () => get(sluice, path)));
    expect(await appSawOn(newPort, path)).toBe(1);
    expect(answers.map((a) => a.xCache).sort()).toEqual(["hit", "hit", "miss"]);
    expect((await onOld).status).toBe(200);
    await stop(sluice);
  }, 90_000);

  test("a public response is stored once and then answered by sluice, with 304 for a matching ETag", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const first = await get(sluice, "/cacheable?a");
    expect([first.status, first.xCache, first.body.slice(0, 9)]).toEqual([200, "miss", "served 1\n"]);
    const hit = await get(sluice, "/cacheable?a");
    expect([hit.status, hit.xCache, hit.body]).toEqual([200, "hit", first.body]);
    expect(hit.headers.get("age")).toMatch(/^\d+$/);
    expect(hit.headers.get("x-request-id")).not.toBe(first.headers.get("x-request-id"));
    const notModified = await fetch(`${sluice.url}/cacheable?a`, { headers: { "if-none-match": '"v1"' } });
    expect([notModified.status, notModified.headers.get("x-cache"), await notModified.text()]).toEqual([304, "hit", ""]);
    expect(await appSaw(sluice, "/cacheable?a")).toBe(1);

    const metrics = await (await fetch(`${sluice.adminUrl}/metrics`)).text();
    expect(metrics).toContain('sluice_cache_events_total{event="hit"} 1');
    expect(metrics).toContain('sluice_cache_events_total{event="not-modified"} 1');
    expect(metrics).toMatch(/sluice_cache_entries 1\n/);
    await stop(sluice);
  }, 60_000);

  test("a stored 204 is answered again as a 204 without a body", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // Deno refuses to build a 204 Response with a body, even an empty one: hits were once 500s.
    for (const xCache of ["miss", "hit", "hit"]) {
      const answer = await get(sluice, "/cacheable?status=204");
      expect([answer.status, answer.xCache, answer.body]).toEqual([204, xCache, ""]);
      expect(answer.headers.get("content-length")).toBeNull();
    }
    expect(await appSaw(sluice, "/cacheable?status=204")).toBe(1);
    await stop(sluice);
  }, 60_000);

  test("a stored redirect is served as it is to a matching If-None-Match, not as 304", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const path = "/cacheable?status=302";
    const first = await fetch(`${sluice.url}${path}`, { redirect: "manual" });
    expect([first.status, first.headers.get("x-cache"), first.headers.get("etag")]).toEqual([302, "miss", '"v1"']);
    await first.text();
    // RFC 9110 section 13.2.1: preconditions apply only when the answer would be a 2xx.
    for (const ifNoneMatch of ['"v1"', "*"]) {
      const hit = await fetch(`${sluice.url}${path}`, { redirect: "manual", headers: { "if-none-match": ifNoneMatch } });
      expect([hit.status, hit.headers.get("x-cache"), hit.headers.get("location")]).toEqual([302, "hit", "/elsewhere"]);
      await hit.text();
    }
    expect(await appSaw(sluice, path)).toBe(1);
    await stop(sluice);
  }, 60_000);

  test("a hit carries exactly the stored headers: no Content-Type when the app sent none", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const miss = await get(sluice, "/cacheable?untyped");
    expect([miss.xCache, miss.headers.get("content-type"), miss.body.slice(0, 9)]).toEqual(["miss", null, "served 1\n"]);
    // Bun's server gives a body of bytes without a type application/octet-stream.
    const hit = await get(sluice, "/cacheable?untyped");
    expect([hit.xCache, hit.headers.get("content-type"), hit.headers.get("content-length"), hit.body]).toEqual(["hit", null, "100", miss.body]);
    await stop(sluice);
  }, 60_000);

  test("a storable miss that came whole keeps its Content-Length, as the same response unstored does", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const framing = (response: Awaited<ReturnType<typeof get>>) => [response.xCache, response.headers.get("content-length"), response.headers.get("transfer-encoding")];
    const unstored = await get(sluice, "/cacheable?bytes=2000&private", { "x-cache-control": "private" });
    expect(framing(unstored)).toEqual(["miss", "2000", null]);
    const miss = await get(sluice, "/cacheable?bytes=2000");
    expect([...framing(miss), miss.body.length]).toEqual(["miss", "2000", null, 2000]);
    const hit = await get(sluice, "/cacheable?bytes=2000");
    expect([...framing(hit), hit.body]).toEqual(["hit", "2000", null, miss.body]);
    await stop(sluice);
  }, 60_000);

  test("a stored file keeps its Content-Length on the miss that stores it (a fingerprinted static file)", async () => {
    const root = tempDir();
    const name = "logo-3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d.png";
    const bytes = new Uint8Array(50_000).map((_, i) => (i * 7919) % 251);
    mkdirSync(join(root, "assets"));
    writeFileSync(join(root, "assets", name), bytes);
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--public-dir", root] });
    for (const xCache of ["miss", "hit"]) {
      const response = await fetch(`${sluice.url}/assets/${name}`);
      expect([response.headers.get("x-cache"), response.headers.get("content-length"), response.headers.get("transfer-encoding")]).toEqual([xCache, "50000", null]);
      expect(new Uint8Array(await response.arrayBuffer())).toEqual(bytes);
      const stored = async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes('sluice_cache_events_total{event="stored"} 1');
      await until(stored, 30_000, "the file to be stored");
    }
    await stop(sluice);
  }, 60_000);

  test("If-Match and If-Unmodified-Since go past the cache: a stored file's failed precondition is a 412, as on a miss", async () => {
    const root = tempDir();
    const name = "app-3f2a9c1d8e7b6a5f.css";
    mkdirSync(join(root, "assets"));
    writeFileSync(join(root, "assets", name), "body { color: red }\n");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--public-dir", root] });
    const path = `/assets/${name}`;
    const stored = async () => (await (await fetch(`${sluice.adminUrl}/metrics`)).text()).includes('sluice_cache_events_total{event="stored"} 1');
    const first = await get(sluice, path);
    await until(stored, 30_000, "the file to be stored");
    expect((await get(sluice, path)).xCache).toBe("hit");
    const etag = first.headers.get("etag")!;
    const old = "Mon, 01 Jan 2001 00:00:00 GMT";
    for (const method of ["GET", "HEAD"]) {
      for (const headers of [{ "if-match": '"other"' }, { "if-unmodified-since": old }, { "if-match": '"other"', "if-none-match": etag }]) {
        const response = await fetch(`${sluice.url}${path}`, { method, headers: { "accept-encoding": "identity", ...headers } });
        await response.arrayBuffer();
        expect([method, headers, response.status, response.headers.get("x-cache")]).toEqual([method, headers, 412, "bypass"]);
      }
    }
    const matching = await get(sluice, path, { "if-match": etag });
    expect([matching.status, matching.body]).toEqual([200, "body { color: red }\n"]);
    await stop(sluice);
  }, 60_000);

  test("an absolute-form target naming another host than Host cannot fill that host's entry", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // The app builds its page for the Host it sees: evil.example. Under Deno, Request.url
    // names victim.example (the target's authority), and that page once became victim's hit.
    const attack = await rawRequest(sluice.httpPort, "GET http://victim.example/cacheable?host HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    expect(attack).toMatch(/^HTTP\/1\.1 200 /);
    expect(attack).toContain("served 1 for evil.example\n");
    const victim = await get(sluice, "/cacheable?host", { host: "victim.example" });
    expect([victim.xCache, victim.body.slice(0, 28)]).toEqual(["miss", "served 2 for victim.example\n"]);
    // Each host still gets its own hits.
    expect((await get(sluice, "/cacheable?host", { host: "victim.example" })).xCache).toBe("hit");
    const evil = await get(sluice, "/cacheable?host", { host: "EVIL.example" });
    expect([evil.xCache, evil.body.slice(0, 26)]).toEqual(["hit", "served 1 for evil.example\n"]);
    expect(await appSaw(sluice, "/cacheable?host")).toBe(2);
    await stop(sluice);
  }, 60_000);

  test("a varied header the request's Connection names counts as absent, as the app never gets it", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const path = "/cacheable?vary=Accept-Language&echo=accept-language";
    // The proxy drops Accept-Language before the app: it answers with its default page, which
    // must not become the French page.
    const dropped = await get(sluice, path, { "accept-language": "fr", connection: "keep-alive, Accept-Language" });
    expect([dropped.xCache, dropped.body.slice(0, 30)]).toEqual(["miss", "served 1 accept-language=null\n"]);
    const french = await get(sluice, path, { "accept-language": "fr" });
    expect([french.xCache, french.body.slice(0, 28)]).toEqual(["miss", "served 2 accept-language=fr\n"]);
    expect((await get(sluice, path, { "accept-language": "fr" })).xCache).toBe("hit");
    // A request without the header is answered like the one whose header was dropped.
    const none = await get(sluice, path);
    expect([none.xCache, none.body.slice(0, 30)]).toEqual(["miss", "served 3 accept-language=null\n"]);
    const droppedAgain = await get(sluice, path, { "accept-language": "fr", connection: "Accept-Language" });
    expect([droppedAgain.xCache, droppedAgain.body.slice(0, 30)]).toEqual(["hit", "served 3 accept-language=null\n"]);
    expect(await appSaw(sluice, path)).toBe(3);
    await stop(sluice);
  }, 60_000);

  test("a response varying on a header sluice sets for the app is not stored", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // The app got sluice's value (the peer's address, a request id ...), not always the
    // client's: a key on the client's value would hand this answer to other clients.
    for (const name of ["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Ssl", "Forwarded", "X-Request-Id", "X-Request-Start"]) {
      const path = `/cacheable?vary=${name}&echo=${name.toLowerCase()}`;
      const headers = { [name]: "spoofed" };
      expect((await get(sluice, path, headers)).xCache).toBe("miss");
      const second = await get(sluice, path, headers);
      expect([name, second.xCache, second.body.slice(0, 9)]).toEqual([name, "miss", "served 2 "]);
    }
    await stop(sluice);
  }, 60_000);

  test("X-Forwarded-Port, -Ssl, -Scheme and -Prefix reach the app only from --trusted-proxies, so no client has a page made for its own", async () => {
    // Rack takes X-Forwarded-Ssl: on for https and X-Forwarded-Port for the port of the URLs
    // it writes: a public page stored for a client that sent them would send everyone to port 1337.
    const spoofed = { "x-forwarded-port": "1337", "x-forwarded-ssl": "on", "x-forwarded-scheme": "https", "x-forwarded-prefix": "/evil" };
    const path = "/cacheable?echo=x-forwarded-port,x-forwarded-ssl,x-forwarded-scheme,x-forwarded-prefix";
    const untrusting = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    expect((await get(untrusting, path, spoofed)).body.split("\n")[0])
      .toBe("served 1 x-forwarded-port=null x-forwarded-ssl=null x-forwarded-scheme=null x-forwarded-prefix=null");
    await stop(untrusting);
    const trusting = await startSluice(target, { args: ["--shutdown-delay", "0", "--trusted-proxies", "127.0.0.1/32"] });
    expect((await get(trusting, path, spoofed)).body.split("\n")[0])
      .toBe("served 1 x-forwarded-port=1337 x-forwarded-ssl=on x-forwarded-scheme=https x-forwarded-prefix=/evil");
    await stop(trusting);
  }, 60_000);

  test("with --trusted-proxies, the scheme and host a trusted proxy forwards are part of the key", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--trusted-proxies", "127.0.0.1/32"] });
    // An http-to-https redirect answered for plain HTTP must not reach HTTPS visitors.
    const path = "/cacheable?echo=x-forwarded-proto,x-forwarded-host";
    const plain = await get(sluice, path, { "x-forwarded-proto": "http" });
    expect([plain.xCache, plain.body.split("\n")[0]])
      .toEqual(["miss", `served 1 x-forwarded-proto=http x-forwarded-host=127.0.0.1:${sluice.httpPort}`]);
    const tls = await get(sluice, path, { "x-forwarded-proto": "https" });
    expect([tls.xCache, tls.body.slice(0, 13)]).toEqual(["miss", "served 2 x-fo"]);
    expect((await get(sluice, path, { "x-forwarded-proto": "https" })).xCache).toBe("hit");
    // The scheme as it came: Rack, Express and Django take "HTTPS" for plain http (only a
    // lower-case "https" is https to them), so its page must not answer "https", nor the reverse.
    const upper = await get(sluice, path, { "x-forwarded-proto": "HTTPS" });
    expect([upper.xCache, upper.body.split("\n")[0]])
      .toEqual(["miss", `served 3 x-forwarded-proto=HTTPS x-forwarded-host=127.0.0.1:${sluice.httpPort}`]);
    expect((await get(sluice, path, { "x-forwarded-proto": "https" })).body.slice(0, 9)).toBe("served 2 ");
    // No forwarded scheme: the app is told "http", as for the first request.
    expect((await get(sluice, path)).body.slice(0, 9)).toBe("served 1 ");
    const evil = await get(sluice, path, { "x-forwarded-host": "evil.example" });
    expect([evil.xCache, evil.body.split("\n")[0]]).toEqual(["miss", "served 4 x-forwarded-proto=http x-forwarded-host=evil.example"]);
    const good = await get(sluice, path, { "x-forwarded-host": "good.example" });
    expect([good.xCache, good.body.slice(0, 9)]).toEqual(["miss", "served 5 "]);
    expect((await get(sluice, path, { "x-forwarded-host": "Good.Example" })).body.slice(0, 9)).toBe("served 5 ");
    await stop(sluice);

    // From an untrusted client they never reach the app, so they are no part of the key.
    const untrusting = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    await get(untrusting, path, { "x-forwarded-proto": "https" });
    const other = await get(untrusting, path, { "x-forwarded-proto": "http", "x-forwarded-host": "evil.example" });
    expect([other.xCache, other.body.slice(0, 9)]).toEqual(["hit", "served 1 "]);
    await stop(untrusting);
  }, 60_000);

  test("with --trusted-proxies, the Forwarded, X-Forwarded-Ssl, -Port, -Scheme and -Prefix a trusted proxy passes on are part of the key", async () => {
    // A proxy may pass its client's own headers on as they came (X-Forwarded-Ssl, Forwarded
    // ...): the page the app made for them (https links, a port, a path prefix, another
    // host) must not be stored for everyone else, nor theirs be answered with the plain one.
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--trusted-proxies", "127.0.0.1/32"] });
    const path = "/cacheable?echo=forwarded,x-forwarded-ssl,x-forwarded-port,x-forwarded-scheme,x-forwarded-prefix";
    const plain = await get(sluice, path);
    expect([plain.xCache, plain.body.split("\n")[0]])
      .toEqual(["miss", "served 1 forwarded=null x-forwarded-ssl=null x-forwarded-port=null x-forwarded-scheme=null x-forwarded-prefix=null"]);
    const forwarded: Record<string, string>[] = [
      { forwarded: "proto=https;host=evil.example" },
      { "x-forwarded-ssl": "on" },
      { "x-forwarded-port": "1337" },
      { "x-forwarded-scheme": "https" },
      { "x-forwarded-prefix": "/evil" },
      { "x-forwarded-prefix": "/Evil" },
    ];
    for (const [i, headers] of forwarded.entries()) {
      const [name, value] = Object.entries(headers)[0]!;
      const answer = await get(sluice, path, headers);
      expect([answer.xCache, answer.body.split("\n")[0]!.includes(`${name}=${value}`), answer.body.slice(0, 9)])
        .toEqual(["miss", true, `served ${i + 2} `]);
    }
    const again = await get(sluice, path, { "x-forwarded-ssl": "on" });
    expect([again.xCache, again.body.slice(0, 9)]).toEqual(["hit", "served 3 "]);
    // One the request's Connection names never reaches the app: the plain page answers it.
    const dropped = await get(sluice, path, { "x-forwarded-ssl": "on", connection: "X-Forwarded-Ssl" });
    expect([dropped.xCache, dropped.body.slice(0, 9)]).toEqual(["hit", "served 1 "]);
    expect(await appSaw(sluice, path)).toBe(forwarded.length + 1);
    await stop(sluice);
  }, 60_000);

  test("a request without Host is keyed by the host the app is given, whatever authority its target names", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // On the binary the app gets no Host either and answers for its own address: Bun drops
    // the target's authority. Under Deno, Request.url names victim.example (the target's
    // authority), and that page, made for the app's own address, once became victim's hit;
    // Deno's app is now given that authority as Host (RFC 9112 section 3.2.2), and its page
    // for victim.example is victim's.
    const path = "/cacheable?host&nohost";
    for (const version of ["1.0", "1.1"]) {
      const attack = await rawRequest(sluice.httpPort, `GET http://victim.example${path}&v=${version} HTTP/${version}\r\nConnection: close\r\n\r\n`);
      // Bun refuses an HTTP/1.1 request without Host (as RFC 9112 section 3.2 asks); Deno takes it.
      if (attack.startsWith("HTTP/1.1 400 ")) continue;
      expect(attack).toMatch(/^HTTP\/1\.[01] 200 /);
      const victim = await get(sluice, `${path}&v=${version}`, { host: "victim.example" });
      if (target.name === "binary") {
        expect(attack).toContain(`served 1 for 127.0.0.1:${sluice.targetPort}\n`);
        expect([version, victim.xCache, victim.body.split("\n")[0]]).toEqual([version, "miss", "served 2 for victim.example"]);
      } else {
        expect(attack).toContain("served 1 for victim.example\n");
        expect([version, victim.xCache, victim.body.split("\n")[0]]).toEqual([version, "hit", "served 1 for victim.example"]);
      }
    }
    await stop(sluice);
  }, 60_000);

  test("a no-cache request drops the stored response when the new one cannot be stored, except a 5xx", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const path = "/cacheable?refresh";
    const refresh = (headers: Record<string, string>) => get(sluice, path, { "cache-control": "no-cache", ...headers });
    await get(sluice, path);
    // The app fails: the stored page still stands in for it.
    expect((await refresh({ "x-status": "503" })).status).toBe(503);
    expect((await get(sluice, path)).body.slice(0, 9)).toBe("served 1\n");
    // The app now calls it private: the public copy is superseded.
    expect((await refresh({ "x-cache-control": "private, max-age=60" })).body.slice(0, 9)).toBe("served 3\n");
    const after = await get(sluice, path);
    expect([after.xCache, after.body.slice(0, 9)]).toEqual(["miss", "served 4\n"]);
    // And gone.
    expect((await refresh({ "x-status": "404" })).status).toBe(404);
    const gone = await get(sluice, path);
    expect([gone.xCache, gone.body.slice(0, 9)]).toEqual(["miss", "served 6\n"]);
    expect((await get(sluice, path)).xCache).toBe("hit");
    await stop(sluice);
  }, 60_000);

  test("of more than one Age, the first counts: a response that arrived stale is not stored", async () => {
    // Two caches on the way each added an Age (RFC 9111 section 5.1: use the first member).
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const stale = "/cacheable?age=100&age=1"; // max-age=60, already 100 s old
    expect((await get(sluice, stale)).xCache).toBe("miss");
    expect((await get(sluice, stale)).xCache).toBe("miss");
    expect(await appSaw(sluice, stale)).toBe(2);
    const aged = "/cacheable?age=30&age=1";
    await get(sluice, aged);
    const hit = await get(sluice, aged);
    expect([hit.xCache, Number(hit.headers.get("age")) >= 30]).toEqual(["hit", true]);
    await stop(sluice);
  }, 60_000);

  test("a directive inside a quoted Cache-Control value does not count", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // max-age=0: never stored, whatever the quoted extension holds.
    const unstorable = { "x-cache-control": 'public, ext=", max-age=3600, ", max-age=0' };
    await get(sluice, "/cacheable?quoted=1", unstorable);
    expect((await get(sluice, "/cacheable?quoted=1", unstorable)).body.slice(0, 9)).toBe("served 2\n");
    // "private" inside the quotes is text, not the directive.
    const storable = { "x-cache-control": 'public, ext="private, no-store", max-age=60' };
    await get(sluice, "/cacheable?quoted=2", storable);
    expect((await get(sluice, "/cacheable?quoted=2", storable)).xCache).toBe("hit");
    await stop(sluice);
  }, 60_000);

  test("Set-Cookie, POST and responses over --max-cache-item-size reach the app every time", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--max-cache-item-size", "2KiB"] });
    for (const path of ["/cacheable?cookie=1", "/cacheable?bytes=4096"]) {
      expect((await get(sluice, path)).xCache).toBe("miss");
      const again = await get(sluice, path);
      expect([again.xCache, again.body.slice(0, 9)]).toEqual(["miss", "served 2\n"]);
    }
    expect((await get(sluice, "/cacheable?bytes=4096")).body).toHaveLength(4096);
    const post = await fetch(`${sluice.url}/cacheable?post`, { method: "POST" });
    expect(post.headers.get("x-cache")).toBe("bypass");
    await stop(sluice);
  }, 60_000);

  test("compressed responses are stored per Accept-Encoding and decode to the same page", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    const path = "/cacheable?bytes=20000";
    const gzip = { "accept-encoding": "gzip" };
    const first = await fetch(`${sluice.url}${path}`, { headers: gzip });
    expect([first.headers.get("x-cache"), first.headers.get("content-encoding")]).toEqual(["miss", "gzip"]);
    const page = await first.text(); // fetch decodes it
    const hit = await fetch(`${sluice.url}${path}`, { headers: gzip });
    expect([hit.headers.get("x-cache"), hit.headers.get("content-encoding"), await hit.text()]).toEqual(["hit", "gzip", page]);
    // Another coding is another variant: fetched once from the app, then a hit too.
    const plain = await get(sluice, path);
    expect([plain.xCache, plain.headers.get("content-encoding"), plain.body.slice(0, 9)]).toEqual(["miss", null, "served 2\n"]);
    expect((await get(sluice, path)).xCache).toBe("hit");
    expect(await appSaw(sluice, path)).toBe(2);
    await stop(sluice);
  }, 60_000);

  test("a miss waits only for a fill of its own variant: another Accept-Encoding's goes to the app at once", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
    // Compressible and slow: every answer says Vary: Accept-Encoding and takes 2 s.
    const path = "/cacheable?variants&bytes=5000&ms=2000";
    const gzip = { "accept-encoding": "gzip" };
    const br = { "accept-encoding": "br" };
    expect((await get(sluice, path, gzip)).xCache).toBe("miss"); // stored: the URL's misses now collapse
    const started = performance.now();
    const timed = (headers: Record<string, string>) => get(sluice, path, headers).then((answer) => ({ ...answer, ms: performance.now() - started }));
    const filling = timed(br); // a miss for the br variant, on its way to the app
    await Bun.sleep(300);
    // The same variant waits for it and is answered from the cache; another one (identity)
    // would never be, so it goes to the app at once instead of after the br fill.
    const [same, other, first] = await Promise.all([timed(br), timed({}), filling]);
    expect([first.xCache, same.xCache, other.xCache]).toEqual(["miss", "hit", "miss"]);
    expect(same.headers.get("content-encoding")).toBe("br");
    expect(other.headers.get("content-encoding")).toBeNull();
    expect(other.ms).toBeLessThan(3500); // about 2.3 s; waiting for the br fill first made it 4 s
    expect(await appSaw(sluice, path)).toBe(3);
    await stop(sluice);
  }, 60_000);

  test("--cache-size 0, or thruster's CACHE_SIZE=0, turns the cache off", async () => {
    for (const options of [{ args: ["--cache-size", "0"] }, { env: { CACHE_SIZE: "0" } }]) {
      const sluice = await startSluice(target, { ...options, args: [...(options.args ?? []), "--shutdown-delay", "0"] });
      await get(sluice, "/cacheable");
      const second = await get(sluice, "/cacheable");
      expect([second.xCache, second.body.slice(0, 9)]).toEqual([null, "served 2\n"]);
      await stop(sluice);
    }
  }, 60_000);

  test("--cache-size bounds the memory of many small entries too: each counts about what it costs", async () => {
    // A stored response costs about 1.9 KB (binary) to 2.5 KB (Deno) of memory beyond its
    // body, key and header bytes (Headers, entry, map and set records); counted as 256
    // bytes, a 64 MiB cache of small answers held 162,000 entries and 360 MiB.
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--cache-size", "1MiB"] });
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 1500) expect((await get(sluice, `/cacheable?bytes=1&small=${next++}`)).status).toBe(200);
    }));
    const metrics = await readMetrics(sluice);
    expect(metrics.sluice_cache_bytes).toBeLessThanOrEqual(1024 * 1024);
    expect(metrics.sluice_cache_entries).toBeGreaterThan(100);
    expect(metrics.sluice_cache_entries).toBeLessThanOrEqual(Math.floor((1024 * 1024) / 1800));
    await stop(sluice);
  }, 60_000);

  test("a reload keeps the cache while its limits stay, and starts an empty one when they change", async () => {
    const path = join(tempDir(), "sluice.toml");
    writeFileSync(path, 'shutdown-delay = "0s"\n');
    const sluice = await startSluice(target, { args: ["--config", path] });
    await get(sluice, "/cacheable");
    expect((await get(sluice, "/cacheable")).xCache).toBe("hit");

    writeFileSync(path, 'shutdown-delay = "0s"\nlog-level = "warning"\n');
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor("reload")).toMatchObject({ result: "ok" });
    expect((await get(sluice, "/cacheable")).xCache).toBe("hit");

    writeFileSync(path, 'shutdown-delay = "0s"\ncache-size = "32MiB"\n');
    sluice.signal("SIGHUP");
    await sluice.waitFor((r) => r.event === "reload" && (r.changed as string[]).includes("cache-size"));
    const after = await get(sluice, "/cacheable");
    expect([after.xCache, after.body.slice(0, 9)]).toEqual(["miss", "served 2\n"]);
    await stop(sluice);
  }, 60_000);

  test("a cache a reload replaced lets go of its entries, even while a request from before the reload is open", async () => {
    const path = join(tempDir(), "sluice.toml");
    writeFileSync(path, 'shutdown-delay = "0s"\ncache-size = "100MiB"\n');
    const sluice = await startSluice(target, { args: ["--config", path] });
    const fill = async (name: string) => {
      for (let i = 0; i < 60; i++) expect((await get(sluice, `/cacheable?bytes=1000000&${name}=${i}`)).xCache).toBe("miss");
    };
    await fill("first");
    const filledKiB = rssKiB(sluice.proc.pid);
    // A long response from before the reload (a WebSocket or an event stream would do too)
    // keeps the old pipeline, and with it whatever the old pipeline holds, until it ends.
    const leave = new AbortController();
    const open = (await fetch(`${sluice.url}/stream?chunks=600&gap=100`, { signal: leave.signal })).body!.getReader();
    expect((await open.read()).done).toBe(false);

    writeFileSync(path, 'shutdown-delay = "0s"\ncache-size = "99MiB"\n');
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor("reload")).toMatchObject({ result: "ok", changed: ["cache-size"] });
    await fill("second");
    // The new cache holds what the first one held: no more memory, once the garbage of the
    // fill is collected (some seconds later; measured: 4 MB less). The first cache's 60 MB
    // stayed on top of it for as long as the stream was open (50 MB more, on both runtimes).
    const growthMiB = () => (rssKiB(sluice.proc.pid) - filledKiB) / 1024;
    await until(() => growthMiB() < 25, 60_000, "the first cache's memory to be freed").catch(() => {});
    expect(Math.round(growthMiB())).toBeLessThan(25);
    // Gone before the stop begins, so the drain has nothing to wait for or cut (an abort:
    // cancelling the reader left Bun's fetch on the connection for up to 30 s).
    leave.abort();
    await sluice.waitFor((r) => r.event === "access" && r.path === "/stream", 30_000);
    await stop(sluice);
  }, 120_000);

  test("a reload that turns compression off or on starts an empty cache: no entry made the other way is served", async () => {
    const path = join(tempDir(), "sluice.toml");
    writeFileSync(path, 'shutdown-delay = "0s"\n');
    const sluice = await startSluice(target, { args: ["--config", path] });
    const page = "/cacheable?bytes=20000";
    const gzip = { "accept-encoding": "gzip" };
    const compressed = await fetch(`${sluice.url}${page}`, { headers: gzip, decompress: false } as RequestInit);
    await compressed.arrayBuffer();
    expect([compressed.headers.get("x-cache"), compressed.headers.get("content-encoding")]).toEqual(["miss", "gzip"]);

    writeFileSync(path, 'shutdown-delay = "0s"\ncompression = false\n');
    sluice.signal("SIGHUP");
    const turnedOff = await sluice.waitFor("reload");
    expect(turnedOff).toMatchObject({ result: "ok", changed: ["compression"] });
    const off = await fetch(`${sluice.url}${page}`, { headers: gzip, decompress: false } as RequestInit);
    expect([off.headers.get("x-cache"), off.headers.get("content-encoding"), (await off.text()).slice(0, 9)]).toEqual(["miss", null, "served 2\n"]);

    // Stored while off, without Vary: Accept-Encoding, it would answer every client uncompressed.
    writeFileSync(path, 'shutdown-delay = "0s"\ncompression = true\n');
    sluice.signal("SIGHUP");
    expect(await sluice.waitFor((r) => r.event === "reload" && r !== turnedOff)).toMatchObject({ result: "ok", changed: ["compression"] });
    const on = await fetch(`${sluice.url}${page}`, { headers: gzip, decompress: false } as RequestInit);
    await on.arrayBuffer();
    expect([on.headers.get("x-cache"), on.headers.get("content-encoding")]).toEqual(["miss", "gzip"]);
    await stop(sluice);
  }, 60_000);
});
