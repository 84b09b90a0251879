/**
 * @module The cache middleware on a real server in front of a real handler that counts its
 * calls (tests/fixtures/cached-app.ts), under Bun here; cache-runner.ts repeats the
 * observations under Deno and Bun and both must print the same.
 */

import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { CachedApp, CHUNK, ETAG, LAST_MODIFIED, readBytes } from "../fixtures/cached-app.ts";
import { BUN, DENO, ROOT, track } from "../harness.ts";

let app: CachedApp;
afterEach(() => app?.stop());

/** A cached app on a clock the test moves. */
async function start(options: { maxItemSize?: number; maxSize?: number } = {}) {
  const clock = { now: 1_000_000 };
  app = await new CachedApp({ ...options, now: () => clock.now }).start(bunRuntime);
  return { app, clock };
}

const get = (path: string, init: RequestInit = {}) => fetch(`${app.url}${path}`, init);

/** Status, X-Cache and body of a response. */
async function summary(response: Response) {
  return { status: response.status, xCache: response.headers.get("x-cache"), body: await response.text() };
}


describe("cache middleware (Bun)", () => {
  test("miss, then hit: the handler is called once", async () => {
    await start();
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "miss", body: "hello 1" });
    await app.waitForEvent("stored");
    const hit = await get("/public");
    expect(await summary(hit)).toEqual({ status: 200, xCache: "hit", body: "hello 1" });
    expect(hit.headers.get("content-type")).toBe("text/plain");
    expect(hit.headers.get("content-length")).toBe("7");
    expect(hit.headers.get("etag")).toBe(ETAG);
    expect(app.called("/public")).toBe(1);
    expect(app.events).toEqual(["miss", "stored", "hit"]);
  });

  test("a hit carries Age from the clock and the request's own X-Request-Id", async () => {
    const { clock } = await start();
    await (await get("/public", { headers: { "x-request-id": "first" } })).text();
    await app.waitForEvent("stored");
    expect((await get("/public")).headers.get("age")).toBe("0");
    clock.now += 5_400;
    const hit = await get("/public", { headers: { "x-request-id": "second" } });
    expect(hit.headers.get("age")).toBe("5");
    expect(hit.headers.get("x-request-id")).toBe("second");
  });

  test("an expired entry misses and is replaced", async () => {
    const { clock } = await start();
    await (await get("/public")).text();
    await app.waitForEvent("stored");
    clock.now += 60_000;
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "miss", body: "hello 2" });
    await app.waitForEvent("stored", 2);
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "hit", body: "hello 2" });
  });

  test("304 from the cache for a matching If-None-Match or If-Modified-Since", async () => {
    await start();
    await (await get("/public")).text();
    await app.waitForEvent("stored");
    for (const headers of [{ "if-none-match": ETAG }, { "if-none-match": `"other", W/${ETAG}` }, { "if-none-match": "*" }, { "if-modified-since": LAST_MODIFIED }]) {
      const response = await get("/public", { headers });
      expect({ status: response.status, xCache: response.headers.get("x-cache"), etag: response.headers.get("etag"), body: await response.text() })
        .toEqual({ status: 304, xCache: "hit", etag: ETAG, body: "" });
      expect(response.headers.get("cache-control")).toBe("public, max-age=60");
      expect(response.headers.get("age")).toBe("0");
      expect(response.headers.has("content-type")).toBe(false);
    }
    // A different tag, or an older date, gets the whole response from the cache.
    expect(await summary(await get("/public", { headers: { "if-none-match": '"v0"' } }))).toEqual({ status: 200, xCache: "hit", body: "hello 1" });
    expect(await summary(await get("/public", { headers: { "if-modified-since": "Thu, 01 Jan 2026 00:00:00 GMT" } })))
      .toEqual({ status: 200, xCache: "hit", body: "hello 1" });
    // A value that is no HTTP-date is ignored (RFC 9110 section 13.1.3), though Date.parse reads it.
    for (const since of ["2099", "2099-01-01T00:00:00Z", "tomorrow 2099"]) {
      expect(await summary(await get("/public", { headers: { "if-modified-since": since } }))).toEqual({ status: 200, xCache: "hit", body: "hello 1" });
    }
    expect(app.called("/public")).toBe(1);
  });

  test("a HEAD is answered from a cached GET; a HEAD alone is not stored", async () => {
    await start();
    const firstHead = await get("/public", { method: "HEAD" });
    expect({ status: firstHead.status, xCache: firstHead.headers.get("x-cache") }).toEqual({ status: 200, xCache: "miss" });
    expect(await summary(await get("/public", { method: "HEAD" }))).toEqual({ status: 200, xCache: "miss", body: "" });
    expect(app.called("/public")).toBe(2);
    await (await get("/public")).text();
    await app.waitForEvent("stored");
    const head = await get("/public", { method: "HEAD" });
    expect(head.headers.get("content-length")).toBe("7");
    expect(await summary(head)).toEqual({ status: 200, xCache: "hit", body: "" });
    expect(app.called("/public")).toBe(3);
  });

  test("X-Cache: bypass for Authorization, no-store and other methods; no-cache refreshes the entry", async () => {
    await start();
    await (await get("/public")).text();
    await app.waitForEvent("stored");
    expect(await summary(await get("/public", { headers: { authorization: "Bearer t" } }))).toEqual({ status: 200, xCache: "bypass", body: "hello 2" });
    expect(await summary(await get("/public", { headers: { "cache-control": "no-store" } }))).toEqual({ status: 200, xCache: "bypass", body: "hello 3" });
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "hit", body: "hello 1" });
    expect(await summary(await get("/public", { headers: { "cache-control": "no-cache" } }))).toEqual({ status: 200, xCache: "bypass", body: "hello 4" });
    await app.waitForEvent("stored", 2);
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "hit", body: "hello 4" });
    // A successful POST invalidates the URL (RFC 9111 section 4.4).
    expect(await summary(await get("/public", { method: "POST", body: "x" }))).toEqual({ status: 200, xCache: "bypass", body: "hello 5" });
    expect(await summary(await get("/public"))).toEqual({ status: 200, xCache: "miss", body: "hello 6" });
  });

  test("private responses, Set-Cookie and errors are never stored", async () => {
    await start();
    for (const path of ["/private", "/cookie", "/missing"]) {
      const first = await get(path);
      const second = await get(path);
      expect([first.headers.get("x-cache"), second.headers.get("x-cache")]).toEqual(["miss", "miss"]);
      await Promise.all([first.text(), second.text()]);
      expect(app.called(path)).toBe(2);
    }
    expect((await get("/cookie")).headers.get("set-cookie")).toBe("session=1");
    expect(app.store.count).toBe(0);
  });

  test("Vary: different request values miss, equal ones hit", async () => {
    await start();
    const lang = (value: string) => get("/vary", { headers: { "accept-language": value } });
    expect(await summary(await lang("en"))).toEqual({ status: 200, xCache: "miss", body: "en 1" });
    await app.waitForEvent("stored");
    expect(await summary(await lang("fr"))).toEqual({ status: 200, xCache: "miss", body: "fr 2" });
    await app.waitForEvent("stored", 2);
    expect(await summary(await lang("en"))).toEqual({ status: 200, xCache: "hit", body: "en 1" });
    expect(await summary(await lang("fr"))).toEqual({ status: 200, xCache: "hit", body: "fr 2" });
    expect(app.called("/vary")).toBe(2);
  });

  test("a body of declared length over the item limit passes through and is not stored", async () => {
    await start();
    for (const expected of [1, 2]) {
      const response = await get("/declared-big");
      expect(response.headers.get("x-cache")).toBe("miss");
      expect((await response.text()).length).toBe(10_000);
      expect(app.called("/declared-big")).toBe(expected);
    }
    expect(app.events).toEqual(["miss", "too-large", "miss", "too-large"]);
  });

  test("a streamed body passes through unbuffered, and is not stored once it grows past the limit", async () => {
    await start();
    const response = await get("/stream-big");
    expect(response.headers.get("x-cache")).toBe("miss");
    const reader = response.body!.getReader();
    // The handler sends its second chunk only after this: a cache that buffered would hang here.
    expect(await readBytes(reader, CHUNK)).toBe(CHUNK);
    expect(app.events).toEqual(["miss"]);
    app.gate("/stream-big").open();
    expect(await readBytes(reader, 2 * CHUNK)).toBe(2 * CHUNK);
    expect((await reader.read()).done).toBe(true);
    expect(app.events).toEqual(["miss", "too-large"]);
    expect(await summary(await get("/stream-big"))).toMatchObject({ status: 200, xCache: "miss" });
    expect(app.called("/stream-big")).toBe(2);
    expect(app.store.count).toBe(0);
  });

  test("a body the client cancels is not stored; the same body, complete, is", async () => {
    await start();
    const abort = new AbortController();
    const response = await get("/stream-cut", { signal: abort.signal });
    const reader = response.body!.getReader();
    expect(await readBytes(reader, 10)).toBe(10);
    abort.abort();
    await app.cancelledGate("/stream-cut").opened;
    await app.waitForEvent("cut");
    expect(app.store.count).toBe(0);
    app.gate("/stream-cut").open();
    expect(await summary(await get("/stream-cut"))).toEqual({ status: 200, xCache: "miss", body: "a".repeat(10) + "b".repeat(10) });
    await app.waitForEvent("stored");
    expect(await summary(await get("/stream-cut"))).toEqual({ status: 200, xCache: "hit", body: "a".repeat(10) + "b".repeat(10) });
    expect(app.called("/stream-cut")).toBe(2);
  });

  test("a body the upstream fails midway is not stored", async () => {
    await start();
    const response = await get("/stream-error");
    const reader = response.body!.getReader();
    expect(await readBytes(reader, 10)).toBe(10);
    app.gate("/stream-error").open();
    const rest = await reader.read().then(({ done }) => (done ? "clean end" : "more"), () => "error");
    expect(rest).toBe("error");
    await app.waitForEvent("cut");
    expect(app.store.count).toBe(0);
    // Again, the handler waiting after its first chunk (a body that fails before the
    // response head went out makes the server reset the connection instead).
    app.gates.delete("/stream-error");
    const again = await get("/stream-error");
    expect(again.headers.get("x-cache")).toBe("miss");
    await again.body!.cancel();
    expect(app.called("/stream-error")).toBe(2);
  });

  test("the total size limit evicts the least recently used entry", async () => {
    await start({ maxSize: 6000, maxItemSize: 1000 });
    await (await get("/public")).text();
    await (await get("/vary", { headers: { "accept-language": "en" } })).text();
    await app.waitForEvent("stored", 2);
    // Each entry is about 2,700 bytes (body, headers, key, ENTRY_OVERHEAD and FIELD_OVERHEAD each): two fit, three do not.
    expect(app.store.count).toBe(2);
    expect((await get("/public")).headers.get("x-cache")).toBe("hit");
    await (await get("/vary", { headers: { "accept-language": "fr" } })).text();
    await app.waitForEvent("stored", 3);
    expect(app.store.count).toBe(2);
    expect((await get("/vary", { headers: { "accept-language": "en" } })).headers.get("x-cache")).toBe("miss");
  });
});

const RUNNER = join(ROOT, "tests/fixtures/cache-runner.ts");
const RUNNERS = [
  { name: "bun", command: [BUN, RUNNER] },
  { name: "deno", command: [DENO, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", RUNNER] },
];

describe.each(RUNNERS)("cache middleware ($name, in its own process)", ({ command }) => {
  test("observes the same as under Bun", async () => {
    const proc = Bun.spawn(command, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    track(proc.pid);
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(stdout)).toEqual({
      missThenHit: [
        { status: 200, xCache: "miss", body: "hello 1" },
        { status: 200, xCache: "hit", body: "hello 1" },
      ],
      calls: 1,
      ageAfter5s: "5",
      requestIdOnHit: "mine",
      notModified: { status: 304, xCache: "hit", etag: ETAG },
      head: { status: 200, xCache: "hit", length: "7", body: "" },
      bypass: ["bypass", "bypass"],
      vary: ["miss", "miss", "hit", "hit"],
      setCookie: ["miss", "miss"],
      expired: { status: 200, xCache: "miss", body: "hello 5" },
      bigStream: { firstChunkAlone: true, total: 3 * CHUNK, events: ["miss", "too-large"], next: "miss" },
      cancelled: { cut: true, stored: false, next: "miss", then: "hit" },
      upstreamError: { client: "error", stored: false, next: "miss" },
    });
  }, 60_000);
});
