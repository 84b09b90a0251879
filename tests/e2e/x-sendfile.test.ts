/**
 * @module X-Sendfile through sluice, on the binary and under Deno: the app names a file and
 * sluice sends it (headers, validators, 304, 206, 416, HEAD, a 10 MiB file byte for byte),
 * keeps the app's other headers, refuses (and logs) files outside --x-sendfile-dirs, behind
 * a symlink leading out or that sluice may not read, and with --x-sendfile=false passes the app's answer through.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { boundByPermissions, BUN, openFds, ROOT, type Sluice, startSluice, TARGETS, tempDir, until } from "../harness.ts";

const FILES_APP = [BUN, join(ROOT, "tests/fixtures/files-app.ts")];
const BIG_BYTES = 10 * 1024 * 1024;

let dir: string;
let big: Buffer;
beforeAll(() => {
  dir = tempDir();
  mkdirSync(join(dir, "allowed"));
  mkdirSync(join(dir, "outside"));
  writeFileSync(join(dir, "allowed/report.pdf"), "%PDF-1.4 sluice\n");
  const modified = new Date("2026-01-02T03:04:05Z");
  utimesSync(join(dir, "allowed/report.pdf"), modified, modified);
  writeFileSync(join(dir, "outside/secret.txt"), "secret\n");
  writeFileSync(join(dir, "allowed/café ünïcode.txt"), "accents\n");
  writeFileSync(join(dir, "allowed/voilà"), "voilà\n"); // its UTF-8 ends in the byte 0xA0 (C3 A0)
  symlinkSync(join(dir, "outside/secret.txt"), join(dir, "allowed/escape.txt"));
  writeFileSync(join(dir, "allowed/locked.txt"), "locked\n");
  chmodSync(join(dir, "allowed/locked.txt"), 0o000);
  mkdirSync(join(dir, "allowed/locked-dir"));
  writeFileSync(join(dir, "allowed/locked-dir/inner.txt"), "inner\n");
  chmodSync(join(dir, "allowed/locked-dir"), 0o000); // not searchable: realpath(3) fails on its files
  // Content-addressed storage: the name the app gives is a link to a blob without an extension.
  mkdirSync(join(dir, "allowed/blobs"));
  writeFileSync(join(dir, "allowed/blobs/sha256-9f86d081"), "body { color: red }\n");
  symlinkSync("blobs/sha256-9f86d081", join(dir, "allowed/site.css"));
  big = randomBytes(BIG_BYTES);
  writeFileSync(join(dir, "allowed/big.bin"), big);
});
afterAll(() => {
  chmodSync(join(dir, "allowed/locked-dir"), 0o755);
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

function start(target: (typeof TARGETS)[number], args: string[] = []): Promise<Sluice> {
  return startSluice(target, { args: ["--shutdown-delay", "0", "--x-sendfile-dirs", join(dir, "allowed"), ...args], child: FILES_APP });
}

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
}

const sendUrl = (sluice: Sluice, path: string, extra = "") => `${sluice.url}/send?path=${encodeURIComponent(path)}${extra}`;

describe.each(TARGETS)("X-Sendfile ($name)", (target) => {
  test("the named file is sent with its headers and the app's; the app's body is discarded", async () => {
    const sluice = await start(target);
    const response = await fetch(sendUrl(sluice, join(dir, "allowed/report.pdf")));
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("%PDF-1.4 sluice\n");
    expect(response.headers.get("content-type")).toBe("application/pdf");
    expect(response.headers.get("content-length")).toBe("16");
    expect(response.headers.get("last-modified")).toBe("Fri, 02 Jan 2026 03:04:05 GMT");
    expect(response.headers.get("etag")).toMatch(/^"[0-9a-f]+-10"$/);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("cache-control")).toBe("private, max-age=60");
    expect(response.headers.get("content-disposition")).toBe('attachment; filename="report.bin"');
    expect(response.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/; HttpOnly"]);
    expect(response.headers.get("x-sendfile")).toBeNull();
    expect(response.headers.get("x-request-id")).toBeTruthy();
    // The app was told, whatever the client claimed.
    expect(response.headers.get("x-sendfile-type-seen")).toBe("X-Sendfile");
    const seen = await (await fetch(`${sluice.url}/headers`, { headers: { "x-sendfile-type": "X-Accel-Redirect" } })).json();
    expect(seen["x-sendfile-type"]).toBe("X-Sendfile");
    // The app's body is not sent, the file is.
    const withBody = await fetch(sendUrl(sluice, join(dir, "allowed/report.pdf"), "&body=1"));
    expect(withBody.headers.get("content-length")).toBe("16");
    expect(await withBody.text()).toBe("%PDF-1.4 sluice\n");
    // The app's own Content-Type wins over the one guessed from the name.
    const typed = await fetch(sendUrl(sluice, join(dir, "allowed/report.pdf"), "&type=application%2Fx-report"));
    expect(typed.headers.get("content-type")).toBe("application/x-report");
    await typed.arrayBuffer();
    // A UTF-8 path, sent as its bytes.
    const accented = await fetch(sendUrl(sluice, join(dir, "allowed/café ünïcode.txt")));
    expect(await accented.text()).toBe("accents\n");
    // One whose last byte is 0xA0, which is no blank in a header value.
    const nbspEnding = await fetch(sendUrl(sluice, join(dir, "allowed/voilà")));
    expect(nbspEnding.status).toBe(200);
    expect(await nbspEnding.text()).toBe("voilà\n");
    await stop(sluice);
  }, 60_000);

  test("the type is guessed from the name the app gave, not from a symlink's target", async () => {
    const sluice = await start(target);
    const response = await fetch(sendUrl(sluice, join(dir, "allowed/site.css")), { headers: { "accept-encoding": "identity" } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("body { color: red }\n");
    expect(response.headers.get("content-type")).toBe("text/css; charset=utf-8");
    await stop(sluice);
  }, 60_000);

  test("the client's conditional and Range headers apply to the file: 304, 206, 416, HEAD", async () => {
    const sluice = await start(target);
    const url = sendUrl(sluice, join(dir, "allowed/report.pdf"));
    const etag = (await fetch(url).then(async (r) => (await r.arrayBuffer(), r))).headers.get("etag")!;
    const notModified = await fetch(url, { headers: { "if-none-match": etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("etag")).toBe(etag);
    expect(notModified.headers.get("cache-control")).toBe("private, max-age=60");
    expect((await fetch(url, { headers: { "if-modified-since": "Fri, 02 Jan 2026 03:04:05 GMT" } })).status).toBe(304);
    const partial = await fetch(url, { headers: { range: "bytes=5-7" } });
    expect(partial.status).toBe(206);
    expect(partial.headers.get("content-range")).toBe("bytes 5-7/16");
    expect(await partial.text()).toBe("1.4");
    const stale = await fetch(url, { headers: { range: "bytes=5-7", "if-range": '"old"' } });
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe("%PDF-1.4 sluice\n");
    const unsatisfiable = await fetch(url, { headers: { range: "bytes=100-" } });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get("content-range")).toBe("bytes */16");
    await unsatisfiable.arrayBuffer();
    expect((await fetch(url, { headers: { "if-match": '"old"' } })).status).toBe(412);
    const head = await fetch(url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("16");
    expect(await head.text()).toBe("");
    await stop(sluice);
  }, 60_000);

  test("a HEAD with Range gets the whole file's headers (200), not a 206: Range is for GET alone", async () => {
    const sluice = await start(target);
    const url = sendUrl(sluice, join(dir, "allowed/report.pdf"));
    for (const headers of [{ range: "bytes=5-7" }, { range: "bytes=100-" }, { range: "bytes=5-7", "if-range": "Fri, 02 Jan 2026 03:04:05 GMT" }]) {
      const head = await fetch(url, { method: "HEAD", headers });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-length")).toBe("16");
      expect(head.headers.get("content-range")).toBeNull();
      expect(head.headers.get("content-type")).toBe("application/pdf");
    }
    await stop(sluice);
  }, 60_000);

  test("a 10 MiB file arrives byte for byte, whole and as a range", async () => {
    const sluice = await start(target);
    const url = sendUrl(sluice, join(dir, "allowed/big.bin"));
    const whole = await fetch(url);
    expect(whole.headers.get("content-length")).toBe(String(BIG_BYTES));
    expect(sha256(new Uint8Array(await whole.arrayBuffer()))).toBe(sha256(big));
    const tail = await fetch(url, { headers: { range: `bytes=${BIG_BYTES - 1_000_000}-` } });
    expect(tail.status).toBe(206);
    expect(sha256(new Uint8Array(await tail.arrayBuffer()))).toBe(sha256(big.subarray(BIG_BYTES - 1_000_000)));
    await stop(sluice);
  }, 60_000);

  test("clients that leave in the middle of a file leave no file open", async () => {
    const sluice = await start(target);
    const url = sendUrl(sluice, join(dir, "allowed/big.bin"));
    await (await fetch(url)).arrayBuffer();
    const baseline = openFds(sluice.proc.pid);
    for (let i = 0; i < 20; i++) {
      const controller = new AbortController();
      const response = await fetch(url, { signal: controller.signal });
      const reader = response.body!.getReader();
      await reader.read();
      controller.abort();
      await reader.closed.catch(() => {});
    }
    // 20 files left open would be 20 descriptors more; a connection or two may linger.
    await until(() => openFds(sluice.proc.pid) <= baseline + 3, 20_000, `sluice's descriptors back near ${baseline}`);
    await stop(sluice);
  }, 60_000);

  test("a file outside the allowed directories, behind a symlink leading out, or missing, is refused without its path and logged", async () => {
    const sluice = await start(target);
    const cases = [
      { path: join(dir, "outside/secret.txt"), status: 403, reason: "outside the allowed directories" },
      { path: join(dir, "allowed/../outside/secret.txt"), status: 403, reason: "outside the allowed directories" },
      { path: join(dir, "allowed/escape.txt"), status: 403, reason: "outside the allowed directories" },
      { path: join(dir, "allowed/missing.txt"), status: 404, reason: "no such file" },
      { path: join(dir, "allowed"), status: 404, reason: "not a regular file" },
    ];
    for (const { path, status, reason } of cases) {
      const response = await fetch(sendUrl(sluice, path, "&body=1"));
      expect(response.status).toBe(status);
      const body = await response.text();
      expect(body).not.toContain(dir);
      expect(body).not.toContain("secret");
      expect(body).not.toContain("never sent");
      expect(response.headers.get("x-sendfile")).toBeNull();
      expect(response.headers.get("set-cookie")).toBeNull();
      const record = await sluice.waitFor((r) => r.event === "x-sendfile.refused" && r.path === path);
      expect(record.level).toBe("WARNING");
      expect(record.reason).toBe(reason);
      expect(record.allowedDirectories).toEqual([join(dir, "allowed")]);
    }
    await stop(sluice);
  }, 60_000);

  test("a file sluice may not read is refused with 403 and logged, never Bun's 500 with its path", async () => {
    const sluice = await start(boundByPermissions(target));
    const path = join(dir, "allowed/locked.txt");
    for (const method of ["GET", "HEAD"]) {
      const response = await fetch(sendUrl(sluice, path), { method });
      expect(response.status).toBe(403);
      const body = await response.text();
      expect(body).not.toContain(dir);
      expect(response.headers.get("set-cookie")).toBeNull();
    }
    const record = await sluice.waitFor((r) => r.event === "x-sendfile.refused" && r.path === path);
    expect(record.reason).toBe("permission denied");
    // A file in a directory sluice may not search: denied too, not "no such file".
    const inner = join(dir, "allowed/locked-dir/inner.txt");
    const behind = await fetch(sendUrl(sluice, inner));
    expect(behind.status).toBe(403);
    expect(await behind.text()).not.toContain(dir);
    expect((await sluice.waitFor((r) => r.event === "x-sendfile.refused" && r.path === inner)).reason).toBe("permission denied");
    // A missing file next to them is still a 404.
    const missing = await fetch(sendUrl(sluice, join(dir, "allowed/missing.txt")));
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
    // A readable file next to it is sent as ever.
    expect(await (await fetch(sendUrl(sluice, join(dir, "allowed/report.pdf")))).text()).toBe("%PDF-1.4 sluice\n");
    await stop(sluice);
  }, 60_000);

  // A file that passes the checks but fails to open, as one deleted or locked in between
  // would: a write-only sysfs attribute, which root may stat and access(2) but not open.
  const WRITE_ONLY = "/sys/bus/pci/rescan";
  test.skipIf(process.getuid?.() !== 0 || !existsSync(WRITE_ONLY))("a file that fails to open after its checks never shows its path", async () => {
    const sluice = await start(target, ["--x-sendfile-dirs", `${join(dir, "allowed")},/sys/bus/pci`]);
    const response = await fetch(sendUrl(sluice, WRITE_ONLY));
    const body = await response.text();
    expect(body).not.toContain(WRITE_ONLY);
    if (target.name === "deno") {
      // Deno opens while the response is made: refused as if the check had seen it.
      expect(response.status).toBe(403);
      expect((await sluice.waitFor("x-sendfile.refused")).reason).toBe("permission denied");
    } else {
      // Bun.serve opens it after sluice handed the response over: a plain 500, logged.
      expect(response.status).toBe(500);
      expect(body).toBe("Internal Server Error\n");
      expect(String((await sluice.waitFor("response.failed")).error)).toContain("EACCES");
    }
    await stop(sluice);
  }, 60_000);

  test("--x-sendfile=false: no X-Sendfile-Type reaches the app, and its answer passes through", async () => {
    const sluice = await start(target, ["--x-sendfile=false"]);
    const seen = await (await fetch(`${sluice.url}/headers`, { headers: { "x-sendfile-type": "X-Sendfile" } })).json();
    expect(seen["x-sendfile-type"]).toBeUndefined();
    const response = await fetch(sendUrl(sluice, join(dir, "allowed/report.pdf"), "&body=1"));
    expect(response.headers.get("x-sendfile")).toBe(join(dir, "allowed/report.pdf"));
    expect(response.headers.get("x-sendfile-type-seen")).toBe("none");
    expect(await response.text()).toBe("the app's own body, never sent\n");
    await stop(sluice);
  }, 60_000);
});
