/**
 * @module fileResponse's preconditions in RFC 9110 section 13.2.2's order (412 before 304),
 * and methods other than GET/HEAD, on a real file through the Bun adapter.
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileResponse } from "../../src/files/file-response.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";

describe("fileResponse preconditions", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-files-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "data.txt");
  writeFileSync(path, "0123456789");
  const modified = new Date("2026-01-02T03:04:05.000Z");
  utimesSync(path, modified, modified);
  const respond = async (headers: Record<string, string> = {}, method = "GET") =>
    (await fileResponse(new Request("http://x/data.txt", { method, headers }), path, bunRuntime)) as Response;
  const etagOf = async () => (await respond()).headers.get("etag")!;

  test("If-Match: 412 unless a tag matches strongly or is *", async () => {
    const etag = await etagOf();
    expect((await respond({ "if-match": etag })).status).toBe(200);
    expect((await respond({ "if-match": `"other", ${etag}` })).status).toBe(200);
    expect((await respond({ "if-match": "*" })).status).toBe(200);
    expect((await respond({ "if-match": '"other"' })).status).toBe(412);
    expect((await respond({ "if-match": `W/${etag}` })).status).toBe(412);
    const failed = await respond({ "if-match": '"other"' });
    expect(failed.body).toBeNull();
    expect(failed.headers.get("etag")).toBe(etag);
  });

  test("If-Unmodified-Since: 412 when the file changed after it; ignored when If-Match is there or the date is invalid", async () => {
    expect((await respond({ "if-unmodified-since": "Fri, 02 Jan 2026 03:04:05 GMT" })).status).toBe(200);
    expect((await respond({ "if-unmodified-since": "Fri, 02 Jan 2026 03:04:04 GMT" })).status).toBe(412);
    expect((await respond({ "if-unmodified-since": "not a date" })).status).toBe(200);
    expect((await respond({ "if-unmodified-since": "2000" })).status).toBe(200); // no HTTP-date: ignored
    expect((await respond({ "if-match": "*", "if-unmodified-since": "Fri, 02 Jan 2026 03:04:04 GMT" })).status).toBe(200);
  });

  test("a failed If-Match wins over a matching If-None-Match (412 before 304)", async () => {
    const etag = await etagOf();
    expect((await respond({ "if-match": '"other"', "if-none-match": etag })).status).toBe(412);
  });

  test("another method gets the whole file: no precondition, no range", async () => {
    const etag = await etagOf();
    for (const headers of [{ "if-none-match": etag }, { "if-match": '"other"' }, { range: "bytes=0-1" }]) {
      const response = await respond(headers, "POST");
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("0123456789");
    }
  });
});
