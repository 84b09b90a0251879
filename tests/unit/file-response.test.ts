/**
 * @module Range parsing and fileResponse's conditional rules, on a real file through the Bun
 * adapter (tests/runtime/adapter.test.ts runs the same through the Deno adapter's server).
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseRange } from "../../src/files/byte-range.ts";
import { fileResponse } from "../../src/files/file-response.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";

describe("parseRange", () => {
  test.each([
    [null, "full"],
    ["bytes=0-9", { start: 0, end: 9 }],
    ["bytes=90-", { start: 90, end: 99 }],
    ["bytes=-10", { start: 90, end: 99 }],
    ["bytes=-1000", { start: 0, end: 99 }],
    ["bytes=50-1000", { start: 50, end: 99 }],
    ["bytes=100-", "unsatisfiable"],
    ["bytes=-0", "unsatisfiable"],
    ["bytes=5-3", "full"],
    ["bytes=0-1,5-6", "full"],
    ["items=0-1", "full"],
    ["bytes=", "full"],
    ["bytes=abc", "full"],
  ] as const)("%p on 100 bytes -> %p", (header, expected) => {
    expect(parseRange(header, 100)).toEqual(expected);
  });

  test("an empty file satisfies only a suffix range (RFC 9110 section 14.1.1), which is ignored: no 206 can be empty", () => {
    expect(parseRange("bytes=0-", 0)).toBe("unsatisfiable");
    expect(parseRange("bytes=-0", 0)).toBe("unsatisfiable");
    expect(parseRange("bytes=-5", 0)).toBe("full");
  });
});

describe("fileResponse", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-files-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "page.html");
  writeFileSync(path, "<p>hello</p>\n");
  const modified = new Date("2026-01-02T03:04:05.678Z");
  utimesSync(path, modified, modified);
  const get = async (headers: Record<string, string> = {}, method = "GET") =>
    (await fileResponse(new Request("http://x/page.html", { method, headers }), path, bunRuntime, { cacheControl: "public, max-age=60" })) as Response;

  test("200 with type, length, validators and cache control", async () => {
    const response = (await get())!;
    expect(response.status).toBe(200);
    expect(Object.fromEntries(response.headers)).toMatchObject({
      "content-type": "text/html; charset=utf-8",
      "content-length": "13",
      "last-modified": "Fri, 02 Jan 2026 03:04:05 GMT",
      "accept-ranges": "bytes",
      "cache-control": "public, max-age=60",
    });
    expect(response.headers.get("etag")).toMatch(/^"[0-9a-f]+-d"$/);
    expect(await response.text()).toBe("<p>hello</p>\n");
  });

  test("HEAD has the headers and no body", async () => {
    const response = (await get({}, "HEAD"))!;
    expect(response.headers.get("content-length")).toBe("13");
    expect(response.body).toBeNull();
  });

  test("304 for a matching If-None-Match (weakly compared) or a later If-Modified-Since", async () => {
    const etag = (await get())!.headers.get("etag")!;
    expect((await get({ "if-none-match": etag }))!.status).toBe(304);
    expect((await get({ "if-none-match": `"other", W/${etag}` }))!.status).toBe(304);
    expect((await get({ "if-none-match": "*" }))!.status).toBe(304);
    expect((await get({ "if-none-match": '"other"' }))!.status).toBe(200);
    expect((await get({ "if-modified-since": "Fri, 02 Jan 2026 03:04:05 GMT" }))!.status).toBe(304);
    expect((await get({ "if-modified-since": "Fri, 02 Jan 2026 03:04:04 GMT" }))!.status).toBe(200);
    expect((await get({ "if-modified-since": "yesterday" }))!.status).toBe(200);
    // Not HTTP-dates, though Date.parse reads them: ignored (RFC 9110 section 13.1.3).
    expect((await get({ "if-modified-since": "2099" }))!.status).toBe(200);
    expect((await get({ "if-modified-since": "2099-01-01T00:00:00Z" }))!.status).toBe(200);
    expect((await get({ "if-modified-since": "Sat Jan  3 00:00:00 2026" }))!.status).toBe(304); // asctime
    // If-None-Match wins over If-Modified-Since.
    expect((await get({ "if-none-match": '"other"', "if-modified-since": "Fri, 02 Jan 2026 03:04:05 GMT" }))!.status).toBe(200);
    const notModified = (await get({ "if-none-match": etag }))!;
    expect(notModified.headers.get("etag")).toBe(etag);
    expect(notModified.body).toBeNull();
  });

  test("206 for a range, honouring If-Range; 416 past the end", async () => {
    const etag = (await get())!.headers.get("etag")!;
    const partial = (await get({ range: "bytes=3-7" }))!;
    expect(partial.status).toBe(206);
    expect(partial.headers.get("content-range")).toBe("bytes 3-7/13");
    expect(partial.headers.get("content-length")).toBe("5");
    expect(await partial.text()).toBe("hello");
    expect((await get({ range: "bytes=3-7", "if-range": etag }))!.status).toBe(206);
    expect((await get({ range: "bytes=3-7", "if-range": '"changed"' }))!.status).toBe(200);
    expect((await get({ range: "bytes=3-7", "if-range": `W/${etag}` }))!.status).toBe(200); // weak never matches
    expect((await get({ range: "bytes=3-7", "if-range": "Fri, 02 Jan 2026 03:04:05 GMT" }))!.status).toBe(206);
    const unsatisfiable = (await get({ range: "bytes=13-" }))!;
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get("content-range")).toBe("bytes */13");
  });

  test("no regular file: the reason, for the caller to answer", async () => {
    expect(await fileResponse(new Request("http://x/"), join(dir, "missing"), bunRuntime)).toBe("not a regular file");
    expect(await fileResponse(new Request("http://x/"), dir, bunRuntime)).toBe("not a regular file");
  });

  test("an empty file is 200 with length 0", async () => {
    const empty = join(dir, "empty.bin");
    writeFileSync(empty, "");
    const response = (await fileResponse(new Request("http://x/empty.bin"), empty, bunRuntime)) as Response;
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
    expect(response.headers.get("content-length")).toBe("0");
  });
});
