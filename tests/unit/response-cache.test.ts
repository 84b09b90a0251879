/** @module ResponseCache, the store: cacheability rules one by one, Vary, expiry on an injected clock, eviction, limits. */

import { describe, expect, test } from "bun:test";
import { freshnessLifetime, parseCacheControl, requestPolicy, resourceUrl } from "../../src/cache/cache-rules.ts";
import { ENTRY_OVERHEAD, FIELD_OVERHEAD, ResponseCache } from "../../src/cache/response-cache.ts";

const URL_A = "http://example.test/a";
const PUBLIC = "public, max-age=60";

/** A request as a server makes it: with the Host header its URL names. */
const request = (url = URL_A, headers: Record<string, string> = {}, method = "GET") =>
  new Request(url, { method, headers: { host: new URL(url).host, ...headers } });
const head = (headers: Record<string, string> = { "cache-control": PUBLIC }, status = 200) => ({ status, headers: new Headers(headers) });
const bytes = (n: number) => new Uint8Array(n).fill(97);

/** A cache on a clock the test moves. */
function clocked(options: { maxSize?: number; maxItemSize?: number } = {}) {
  const clock = { now: 1_000_000 };
  const cache = new ResponseCache({ ...options, now: () => clock.now });
  return { cache, clock };
}

describe("requestPolicy", () => {
  test.each([
    ["GET", {}, "use"],
    ["HEAD", {}, "use"],
    ["POST", {}, "bypass"],
    ["PUT", {}, "bypass"],
    ["DELETE", {}, "bypass"],
    ["OPTIONS", {}, "bypass"],
    ["GET", { authorization: "Bearer x" }, "bypass"],
    ["GET", { range: "bytes=0-1" }, "bypass"],
    ["GET", { "if-match": '"a"' }, "bypass"],
    ["HEAD", { "if-unmodified-since": "Mon, 07 Dec 2026 10:00:00 GMT" }, "bypass"],
    ["GET", { "if-none-match": '"a"' }, "use"],
    ["GET", { upgrade: "websocket", connection: "upgrade" }, "bypass"],
    ["GET", { "cache-control": "no-store" }, "bypass"],
    ["GET", { "cache-control": "no-cache" }, "refresh"],
    ["GET", { "cache-control": "No-Cache" }, "refresh"],
    ["GET", { pragma: "no-cache" }, "refresh"],
    // Pragma is ignored when Cache-Control is present (RFC 9111 section 5.4).
    ["GET", { pragma: "no-cache", "cache-control": "max-age=10" }, "use"],
    ["GET", { "cache-control": "max-age=0" }, "use"],
  ] as const)("%s %j -> %s", (method, headers, expected) => {
    expect(requestPolicy(request(URL_A, headers, method))).toBe(expected);
  });
});

describe("parseCacheControl", () => {
  test("names lowercased, values unquoted, first occurrence wins", () => {
    expect([...parseCacheControl(' Public, MAX-AGE=5, s-maxage="7", max-age=9, no-cache="set-cookie",,')]).toEqual([
      ["public", ""],
      ["max-age", "5"],
      ["s-maxage", "7"],
      ["no-cache", "set-cookie"],
    ]);
    expect(parseCacheControl(null).size).toBe(0);
  });

  test("a quoted string is one value, commas, quotes and escapes included (RFC 9110 section 5.6.4)", () => {
    expect([...parseCacheControl('public, ext=", max-age=3600, ", max-age=1')]).toEqual([
      ["public", ""],
      ["ext", ", max-age=3600, "],
      ["max-age", "1"],
    ]);
    expect([...parseCacheControl('no-cache="set-cookie, x-a", ext="a \\"quoted, one\\" \\\\", private')]).toEqual([
      ["no-cache", "set-cookie, x-a"],
      ["ext", 'a "quoted, one" \\'],
      ["private", ""],
    ]);
    expect(freshnessLifetime(head({ "cache-control": 'public, ext=", max-age=3600, ", max-age=1' }))).toBe(1);
    expect(freshnessLifetime(head({ "cache-control": 'public, ext="private, no-store", max-age=60' }))).toBe(60);
  });
});

describe("resourceUrl", () => {
  const withHost = (headers: Record<string, string>) => request("http://ignored.test/p?q", { host: "Site.Example", ...headers });

  test("the Host header and the target; forwarded scheme and host only from a trusted proxy", () => {
    let asked = 0;
    const trusted = () => (asked++, true);
    expect(resourceUrl(withHost({}), trusted)).toBe("http://site.example/p?q");
    expect(asked).toBe(0); // nothing forwarded: trust is not looked up
    expect(resourceUrl(withHost({ "x-forwarded-proto": "https" }), trusted)).toBe("https://site.example/p?q");
    // As it came: frameworks take only a lower-case "https" for https.
    expect(resourceUrl(withHost({ "x-forwarded-proto": "HTTPS" }), trusted)).toBe("HTTPS://site.example/p?q");
    expect(resourceUrl(withHost({ "x-forwarded-proto": "https" }), () => false)).toBe("http://site.example/p?q");
    expect(resourceUrl(withHost({ "x-forwarded-proto": "https" }))).toBe("http://site.example/p?q");
    // The app gets both X-Forwarded-Host and Host, and may read either.
    expect(resourceUrl(withHost({ "x-forwarded-host": "Public.Example" }), trusted)).toBe("http://public.example/p?q (Host: site.example)");
    expect(resourceUrl(withHost({ "x-forwarded-host": "site.example", "x-forwarded-proto": "https" }), trusted)).toBe("https://site.example/p?q");
    // Without a Host (or with an empty one) the app answers for its own address, whatever the target names.
    expect(resourceUrl(request("http://victim.example/p?q", { host: "" }))).toBe("http:///p?q");
    expect(resourceUrl(new Request("http://victim.example/p?q"))).toBe("http:///p?q");
    // Headers the Connection header names are dropped before the app.
    expect(resourceUrl(withHost({ "x-forwarded-proto": "https", connection: "X-Forwarded-Proto" }), trusted)).toBe("http://site.example/p?q");
  });

  test("the other forwarding headers a trusted proxy passes on are part of it, as they came", () => {
    expect(resourceUrl(withHost({ "x-forwarded-ssl": "on" }), () => true)).toBe("http://site.example/p?q (x-forwarded-ssl: on)");
    expect(resourceUrl(withHost({ forwarded: "proto=https;host=Evil.Example", "x-forwarded-prefix": "/App" }), () => true))
      .toBe("http://site.example/p?q (forwarded: proto=https;host=Evil.Example) (x-forwarded-prefix: /App)");
    expect(resourceUrl(withHost({ "x-forwarded-proto": "https", "x-forwarded-port": "8443" }), () => true)).toBe("https://site.example/p?q (x-forwarded-port: 8443)");
    expect(resourceUrl(withHost({ "x-forwarded-ssl": "on" }), () => false)).toBe("http://site.example/p?q");
    expect(resourceUrl(withHost({ "x-forwarded-ssl": "on" }))).toBe("http://site.example/p?q");
    expect(resourceUrl(withHost({ "x-forwarded-scheme": "https", connection: "x-forwarded-scheme" }), () => true)).toBe("http://site.example/p?q");
  });
});

describe("freshnessLifetime (what may be stored, and for how long)", () => {
  test.each([
    [{ "cache-control": "public, max-age=60" }, 200, 60],
    [{ "cache-control": "max-age=60, public" }, 200, 60],
    [{ "cache-control": "public, s-maxage=30, max-age=60" }, 200, 30],
    [{ "cache-control": "public, max-age=5, s-maxage=300" }, 200, 300],
    [{ "cache-control": "public, max-age=60" }, 301, 60],
    [{ "cache-control": "public, max-age=60" }, 302, 60],
    [{ "cache-control": "public, max-age=60" }, 399, 60],
    [{ "cache-control": "public, max-age=60" }, 204, 60],
    [{ "cache-control": "public, max-age=60", age: "15" }, 200, 45],
    [{ "cache-control": "public, max-age=60", age: "15, 1" }, 200, 45], // of a list, the first (RFC 9111 section 5.1)
  ] as const)("%j with %d -> %d s", (headers, status, expected) => {
    expect(freshnessLifetime(head(headers, status))).toBe(expected);
  });

  test.each([
    ["no Cache-Control", {}, 200],
    ["not public", { "cache-control": "max-age=60" }, 200],
    ["public without an age", { "cache-control": "public" }, 200],
    ["max-age=0", { "cache-control": "public, max-age=0" }, 200],
    ["a malformed max-age", { "cache-control": "public, max-age=1h" }, 200],
    ["a negative max-age", { "cache-control": "public, max-age=-5" }, 200],
    ["a malformed s-maxage (it wins even then)", { "cache-control": "public, s-maxage=x, max-age=60" }, 200],
    ["no-cache", { "cache-control": "public, max-age=60, no-cache" }, 200],
    ['no-cache="field"', { "cache-control": 'public, max-age=60, no-cache="set-cookie"' }, 200],
    ["no-store", { "cache-control": "public, max-age=60, no-store" }, 200],
    ["private", { "cache-control": "public, max-age=60, private" }, 200],
    ["Vary: *", { "cache-control": PUBLIC, vary: "*" }, 200],
    ["Vary: Accept, *", { "cache-control": PUBLIC, vary: "Accept, *" }, 200],
    ["Set-Cookie", { "cache-control": PUBLIC, "set-cookie": "a=1" }, 200],
    ...["X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Request-Id", "X-Request-Start", "X-Sendfile-Type", "Traceparent", "TE", "Accept, x-forwarded-for"]
      .map((vary) => [`Vary: ${vary} (the proxy sets it for the app)`, { "cache-control": PUBLIC, vary }, 200] as const),
    ["older than its max-age", { "cache-control": PUBLIC, age: "60" }, 200],
    ["older than its max-age by its first Age", { "cache-control": PUBLIC, age: "100, 1" }, 200],
    ["status 199", { "cache-control": PUBLIC }, 199],
    ["status 206", { "cache-control": PUBLIC }, 206],
    ["status 304", { "cache-control": PUBLIC }, 304],
    ["status 400", { "cache-control": PUBLIC }, 400],
    ["status 404", { "cache-control": PUBLIC }, 404],
    ["status 500", { "cache-control": PUBLIC }, 500],
  ] as const)("never with %s", (_, headers, status) => {
    expect(freshnessLifetime(head(headers, status))).toBeUndefined();
  });
});

describe("ResponseCache", () => {
  test("stores a public GET and finds it for GET and HEAD, not for other URLs", () => {
    const { cache } = clocked();
    const stored = cache.store(request(), head({ "cache-control": PUBLIC, etag: '"v1"', "content-type": "text/plain" }), bytes(5));
    expect(stored).toBe(true);
    const entry = cache.lookup(request())!;
    expect(entry.status).toBe(200);
    expect(new TextDecoder().decode(entry.body)).toBe("aaaaa");
    expect(entry.etag).toBe('"v1"');
    expect(Object.fromEntries(entry.headers)).toMatchObject({ "content-length": "5", "content-type": "text/plain", etag: '"v1"' });
    expect(cache.lookup(request(URL_A, {}, "HEAD"))).toBe(entry);
    expect(cache.lookup(request(URL_A, {}, "POST"))).toBeUndefined();
    expect(cache.lookup(request("http://example.test/a?x=1"))).toBeUndefined();
    expect(cache.lookup(request("http://other.test/a"))).toBeUndefined();
    expect(cache.count).toBe(1);
  });

  test("clear drops every entry, says how many, and counts a generation", () => {
    const { cache } = clocked();
    cache.store(request(), head({ "cache-control": PUBLIC }), bytes(5));
    cache.store(request("http://example.test/b"), head({ "cache-control": PUBLIC }), bytes(5));
    const generation = cache.generation;
    expect(cache.clear()).toBe(2);
    expect([cache.count, cache.size, cache.generation]).toEqual([0, 0, generation + 1]);
    expect(cache.lookup(request())).toBeUndefined();
    expect(cache.clear()).toBe(0);
  });

  test("remove drops the entry that would answer the request, and only that one", () => {
    const { cache } = clocked();
    const varyLanguage = head({ "cache-control": PUBLIC, vary: "Accept-Language" });
    cache.store(request(URL_A, { "accept-language": "en" }), varyLanguage, bytes(1));
    cache.store(request(URL_A, { "accept-language": "fr" }), varyLanguage, bytes(2));
    expect(cache.remove(request(URL_A, { "accept-language": "fr" }))).toBe(true);
    expect(cache.remove(request(URL_A, { "accept-language": "fr" }))).toBe(false);
    expect(cache.remove(request("http://other.test/a"))).toBe(false);
    expect(cache.lookup(request(URL_A, { "accept-language": "en" }))!.body.byteLength).toBe(1);
    expect(cache.count).toBe(1);
  });

  test("never stores responses to HEAD, other methods or requests that bypass", () => {
    const { cache } = clocked();
    expect(cache.store(request(URL_A, {}, "HEAD"), head(), bytes(0))).toBe(false);
    expect(cache.store(request(URL_A, {}, "POST"), head(), bytes(1))).toBe(false);
    expect(cache.store(request(URL_A, { authorization: "Basic eDp5" }), head(), bytes(1))).toBe(false);
    expect(cache.store(request(URL_A, { "cache-control": "no-store" }), head(), bytes(1))).toBe(false);
    expect(cache.count).toBe(0);
    // no-cache on the request refreshes: the response is stored.
    expect(cache.store(request(URL_A, { "cache-control": "no-cache" }), head(), bytes(1))).toBe(true);
  });

  test("never stores a response with Set-Cookie, Vary: * or without public max-age", () => {
    const { cache } = clocked();
    expect(cache.store(request(), head({ "cache-control": PUBLIC, "set-cookie": "session=1" }), bytes(1))).toBe(false);
    expect(cache.store(request(), head({ "cache-control": PUBLIC, vary: "*" }), bytes(1))).toBe(false);
    expect(cache.store(request(), head({ "cache-control": "private, max-age=60" }), bytes(1))).toBe(false);
    expect(cache.store(request(), head({ "cache-control": PUBLIC }, 404), bytes(1))).toBe(false);
    expect(cache.count).toBe(0);
  });

  test("drops hop-by-hop and per-request headers, and those Connection names", () => {
    const { cache } = clocked();
    cache.store(
      request(),
      head({
        "cache-control": PUBLIC,
        connection: "x-hop",
        "x-hop": "1",
        "keep-alive": "timeout=5",
        "transfer-encoding": "chunked",
        "x-request-id": "abc",
        "x-cache": "miss",
        age: "3",
        "content-length": "999",
        "x-kept": "yes",
      }),
      bytes(2),
    );
    expect(Object.fromEntries(cache.lookup(request())!.headers)).toEqual({
      "cache-control": PUBLIC,
      "x-kept": "yes",
      "content-length": "2",
    });
  });

  describe("Vary", () => {
    const varying = head({ "cache-control": PUBLIC, vary: "Accept-Encoding, Accept-Language" });

    test("a request with the same values hits, different or missing values miss", () => {
      const { cache } = clocked();
      cache.store(request(URL_A, { "accept-encoding": "gzip", "accept-language": "en" }), varying, bytes(1));
      expect(cache.lookup(request(URL_A, { "accept-encoding": "gzip", "accept-language": "en" }))).toBeDefined();
      expect(cache.lookup(request(URL_A, { "accept-language": "en", "accept-encoding": "gzip", "user-agent": "x" }))).toBeDefined();
      expect(cache.lookup(request(URL_A, { "accept-encoding": "br", "accept-language": "en" }))).toBeUndefined();
      expect(cache.lookup(request(URL_A, { "accept-encoding": "gzip" }))).toBeUndefined();
      expect(cache.lookup(request(URL_A, { "accept-encoding": "gzip", "accept-language": "" }))).toBeUndefined();
      expect(cache.lookup(request())).toBeUndefined();
    });

    test("each variant is its own entry; the header names' case and order do not matter", () => {
      const { cache } = clocked();
      cache.store(request(URL_A, { "accept-encoding": "gzip" }), head({ "cache-control": PUBLIC, vary: "Accept-Encoding" }), bytes(1));
      cache.store(request(URL_A, { "accept-encoding": "br" }), head({ "cache-control": PUBLIC, vary: "accept-encoding" }), bytes(2));
      cache.store(request(URL_A), head({ "cache-control": PUBLIC, vary: "ACCEPT-ENCODING" }), bytes(3));
      expect(cache.count).toBe(3);
      expect(cache.lookup(request(URL_A, { "accept-encoding": "gzip" }))!.body.byteLength).toBe(1);
      expect(cache.lookup(request(URL_A, { "accept-encoding": "br" }))!.body.byteLength).toBe(2);
      expect(cache.lookup(request(URL_A))!.body.byteLength).toBe(3);
      const both = head({ "cache-control": PUBLIC, vary: "b, a" });
      const same = head({ "cache-control": PUBLIC, vary: "A,B" });
      cache.store(request(URL_A, { a: "1", b: "2" }), both, bytes(4));
      cache.store(request(URL_A, { a: "1", b: "2" }), same, bytes(5));
      expect(cache.lookup(request(URL_A, { b: "2", a: "1" }))!.body.byteLength).toBe(5);
    });

    test("a varied header the request's Connection names is looked up as absent, and such a request's response is not stored", () => {
      const { cache } = clocked();
      const varyLanguage = head({ "cache-control": PUBLIC, vary: "Accept-Language" });
      // The app never got the header, but sluice's own compression reads Accept-Encoding:
      // neither the client's value nor "absent" is surely what the response was made for.
      expect(cache.store(request(URL_A, { "accept-language": "fr", connection: "keep-alive, Accept-Language" }), varyLanguage, bytes(1))).toBe(false);
      expect(cache.store(request(URL_A, { "accept-encoding": "gzip", connection: "accept-encoding" }), varying, bytes(1))).toBe(false);
      expect(cache.count).toBe(0);
      cache.store(request(URL_A, { "accept-language": "fr" }), varyLanguage, bytes(2));
      cache.store(request(URL_A), varyLanguage, bytes(3));
      expect(cache.lookup(request(URL_A, { "accept-language": "fr", connection: "Accept-Language" }))!.body.byteLength).toBe(3);
      expect(cache.lookup(request(URL_A, { "accept-language": "fr", connection: "close" }))!.body.byteLength).toBe(2);
      // A Connection header naming other headers changes nothing.
      expect(cache.store(request(URL_A, { "accept-language": "de", connection: "x-other" }), varyLanguage, bytes(4))).toBe(true);
      expect(cache.lookup(request(URL_A, { "accept-language": "de" }))!.body.byteLength).toBe(4);
    });

    test("a response that varies on other headers replaces the URL's old variants", () => {
      const { cache } = clocked();
      cache.store(request(URL_A, { "accept-encoding": "gzip" }), head({ "cache-control": PUBLIC, vary: "Accept-Encoding" }), bytes(1));
      cache.store(request(URL_A, { "accept-encoding": "br" }), head({ "cache-control": PUBLIC, vary: "Accept-Encoding" }), bytes(1));
      cache.store(request(URL_A, { "accept-encoding": "gzip" }), head(), bytes(7));
      expect(cache.count).toBe(1);
      expect(cache.lookup(request(URL_A, { "accept-encoding": "br" }))!.body.byteLength).toBe(7);
    });
  });

  describe("expiry on the injected clock", () => {
    test("fresh until max-age has passed, then dropped", () => {
      const { cache, clock } = clocked();
      cache.store(request(), head({ "cache-control": "public, max-age=10" }), bytes(1));
      clock.now += 9_999;
      expect(cache.lookup(request())).toBeDefined();
      clock.now += 1;
      expect(cache.lookup(request())).toBeUndefined();
      expect(cache.count).toBe(0);
      expect(cache.size).toBe(0);
    });

    test("s-maxage wins over max-age; an upstream Age shortens the lifetime and adds to Age", () => {
      const { cache, clock } = clocked();
      cache.store(request(), head({ "cache-control": "public, max-age=100, s-maxage=10", age: "4" }), bytes(1));
      const entry = cache.lookup(request())!;
      expect(cache.age(entry)).toBe(4);
      clock.now += 2_500;
      expect(cache.age(entry)).toBe(6);
      clock.now += 3_499;
      expect(cache.lookup(request())).toBeDefined();
      clock.now += 1;
      expect(cache.lookup(request())).toBeUndefined();
    });

    test("prune drops every expired entry and keeps the fresh ones", () => {
      const { cache, clock } = clocked();
      cache.store(request(`${URL_A}1`), head({ "cache-control": "public, max-age=1" }), bytes(1));
      cache.store(request(`${URL_A}2`), head({ "cache-control": "public, max-age=5" }), bytes(1));
      cache.store(request(`${URL_A}3`), head({ "cache-control": "public, max-age=1" }), bytes(1));
      clock.now += 2_000;
      expect(cache.prune()).toBe(2);
      expect(cache.count).toBe(1);
      expect(cache.lookup(request(`${URL_A}2`))).toBeDefined();
    });
  });

  describe("size limits and eviction", () => {
    /** The size of an entry for `url` with an n-byte body and the `head()` headers. */
    const entrySize = (url: string, n: number) => ENTRY_OVERHEAD + 2 * FIELD_OVERHEAD + `${url}\n`.length + n + "cache-control".length + PUBLIC.length + "content-length".length + String(n).length;

    test("size counts body, headers and key; it returns to 0 when entries go", () => {
      const { cache } = clocked();
      cache.store(request(), head(), bytes(100));
      expect(cache.size).toBe(entrySize(URL_A, 100));
      expect(cache.lookup(request())!.size).toBe(cache.size);
      expect(cache.invalidate(URL_A)).toBe(1);
      expect(cache.size).toBe(0);
    });

    test("a body over the item limit is not stored; one at the limit is (headers and key do not count towards it)", () => {
      const { cache } = clocked({ maxItemSize: 1000 });
      expect(cache.store(request(), head(), bytes(1001))).toBe(false);
      expect(cache.count).toBe(0);
      expect(cache.store(request(), head(), bytes(1000))).toBe(true);
      expect(cache.size).toBe(entrySize(URL_A, 1000));
    });

    test("an item over the total size is not stored, whatever the item limit", () => {
      const { cache } = clocked({ maxSize: 500, maxItemSize: 10_000 });
      expect(cache.maxItemSize).toBe(500);
      expect(cache.store(request(), head(), bytes(600))).toBe(false);
    });

    test("evicts least recently used first: a lookup makes an entry recent", () => {
      const one = entrySize(`${URL_A}1`, 100);
      const { cache } = clocked({ maxSize: one * 3 });
      for (const n of [1, 2, 3]) expect(cache.store(request(`${URL_A}${n}`), head(), bytes(100))).toBe(true);
      expect(cache.size).toBe(one * 3);
      cache.lookup(request(`${URL_A}1`)); // 2 is now the least recently used
      cache.store(request(`${URL_A}4`), head(), bytes(100));
      expect(cache.lookup(request(`${URL_A}2`))).toBeUndefined();
      expect([1, 3, 4].map((n) => cache.lookup(request(`${URL_A}${n}`)) !== undefined)).toEqual([true, true, true]);
      expect(cache.size).toBe(one * 3);
      // A bigger entry evicts as many as it needs, oldest first (1, then 3, in lookup order above).
      // (its body's length has more digits than 100: Content-Length counts them)
      let twice = 100 + one;
      while (entrySize(`${URL_A}5`, twice) > 2 * one) twice--;
      cache.store(request(`${URL_A}5`), head(), bytes(twice));
      expect([1, 3, 4, 5].map((n) => cache.lookup(request(`${URL_A}${n}`)) !== undefined)).toEqual([false, false, true, true]);
      expect(cache.size).toBeLessThanOrEqual(cache.maxSize);
    });

    test("expired entries go before fresh ones when room is needed", () => {
      const one = entrySize(`${URL_A}1`, 100);
      const { cache, clock } = clocked({ maxSize: one * 3 });
      cache.store(request(`${URL_A}1`), head(), bytes(100));
      cache.store(request(`${URL_A}2`), head(), bytes(100));
      cache.store(request(`${URL_A}3`), head({ "cache-control": "public, max-age=1" }), bytes(100));
      clock.now += 2_000;
      cache.store(request(`${URL_A}4`), head(), bytes(100));
      expect([1, 2, 3, 4].map((n) => cache.lookup(request(`${URL_A}${n}`)) !== undefined)).toEqual([true, true, false, true]);
    });

    test("replacing an entry replaces its size", () => {
      const { cache } = clocked();
      cache.store(request(), head(), bytes(100));
      cache.store(request(), head(), bytes(10));
      expect(cache.count).toBe(1);
      expect(cache.size).toBe(entrySize(URL_A, 10));
    });

    test("stays within maxSize over many stores", () => {
      const { cache } = clocked({ maxSize: 10_000, maxItemSize: 2_000 });
      for (let i = 0; i < 500; i++) {
        cache.store(request(`${URL_A}/${i}`, { v: String(i % 3) }), head({ "cache-control": PUBLIC, vary: i % 2 ? "v" : "" }), bytes(i % 1500));
        expect(cache.size).toBeLessThanOrEqual(10_000);
      }
      let total = 0;
      for (let i = 0; i < 500; i++) total += cache.lookup(request(`${URL_A}/${i}`, { v: String(i % 3) }))?.size ?? 0;
      expect(total).toBe(cache.size);
    });
  });

  test("refuses negative limits", () => {
    expect(() => new ResponseCache({ maxSize: -1 })).toThrow(RangeError);
  });
});

describe("Fills (concurrent misses for one URL)", () => {
  test("those who join are told once when the fill ends; ending it again, or an old fill's end, touches no newer fill", () => {
    const fills = new ResponseCache().fills;
    const told: string[] = [];
    expect(fills.underWay("u")).toBe(false);
    const end = fills.begin("u");
    expect(fills.underWay("u")).toBe(true);
    fills.join("u", () => told.push("a"));
    fills.join("u", () => told.push("b"));
    expect(told).toEqual([]);
    end(true);
    expect(told).toEqual(["a", "b"]);
    expect(fills.underWay("u")).toBe(false);
    // A newer fill of the same URL is not ended by the first one's end, called again.
    const endNewer = fills.begin("u");
    fills.join("u", () => told.push("c"));
    end(false);
    expect([told, fills.underWay("u")]).toEqual([["a", "b"], true]);
    endNewer(true);
    expect([told, fills.size]).toEqual([["a", "b", "c"], 0]);
    // Joining when nothing is under way is told at once.
    fills.join("v", () => told.push("d"));
    expect(told.at(-1)).toBe("d");
  });

  test("emptying the cache detaches the fills under way: later misses start their own, those who joined still hear the end", () => {
    const cache = new ResponseCache();
    const told: string[] = [];
    const endOld = cache.fills.begin("u");
    cache.fills.join("u", () => told.push("early"));
    cache.clear();
    expect(cache.fills.underWay("u")).toBe(false);
    const endNew = cache.fills.begin("u");
    cache.fills.join("u", () => told.push("late"));
    endOld(true);
    expect([told, cache.fills.underWay("u")]).toEqual([["early"], true]);
    endNew(true);
    expect(told).toEqual(["early", "late"]);
  });

  test("only URLs whose last answer was stored are worth collapsing; a fill not stored forgets the URL; the oldest go past 1 MiB of URLs", () => {
    const fills = new ResponseCache().fills;
    expect(fills.worthCollapsing("u")).toBe(false);
    fills.stored("u");
    expect(fills.worthCollapsing("u")).toBe(true);
    fills.begin("u")(true);
    expect(fills.worthCollapsing("u")).toBe(true);
    fills.begin("u")(false);
    expect(fills.worthCollapsing("u")).toBe(false);
    const url = (i: number) => `/${String(i).padStart(1023, "0")}`; // 1 KiB each
    for (let i = 0; i < 1024; i++) fills.stored(url(i));
    fills.stored(url(0)); // stored again: the most recent
    fills.stored("/last");
    expect([0, 1, 2, 1023].map((i) => fills.worthCollapsing(url(i)))).toEqual([true, false, true, true]);
    expect(fills.worthCollapsing("/last")).toBe(true);
  });

  test("a fill is keyed by the variant it fetches, under the Vary of the URL's last stored answer; a variant's end still decides the URL", () => {
    const cache = new ResponseCache();
    const gzip = request(URL_A, { "accept-encoding": "gzip" });
    const gzipToo = request(URL_A, { "accept-encoding": " gzip " });
    const identity = request(URL_A);
    // Not stored yet, or stored without Vary: the URL itself.
    expect(cache.fillKey(gzip)).toBe(URL_A);
    cache.fills.stored(URL_A);
    expect([cache.fillKey(gzip), cache.fillKey(identity)]).toEqual([URL_A, URL_A]);
    cache.fills.stored(URL_A, ["accept-encoding"]);
    expect(cache.fillKey(gzip)).toBe(cache.fillKey(gzipToo));
    expect(cache.fillKey(gzip)).not.toBe(cache.fillKey(identity));
    const end = cache.fills.begin(cache.fillKey(gzip), URL_A);
    expect([cache.fills.underWay(cache.fillKey(gzipToo)), cache.fills.underWay(cache.fillKey(identity))]).toEqual([true, false]);
    end(false);
    expect([cache.fills.underWay(cache.fillKey(gzip)), cache.fills.worthCollapsing(URL_A)]).toEqual([false, false]);
  });
});
