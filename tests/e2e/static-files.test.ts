/**
 * @module Static files from --public-dir through sluice, on the binary and under Deno: types,
 * validators, ranges, the immutable rule for fingerprinted names, index.html, fallback to the
 * app, traversal attempts sent as raw request targets (fetch would normalize them), and files
 * answered while the child is not ready yet.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { boundByPermissions, BUN, ROOT, type Sluice, startSluice, TARGETS, tempDir, track, until } from "../harness.ts";

const FILES_APP = [BUN, join(ROOT, "tests/fixtures/files-app.ts")];
const IMMUTABLE = "public, max-age=31536000, immutable";
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 3]);

let dir: string;
let publicDir: string;
beforeAll(() => {
  dir = tempDir();
  publicDir = join(dir, "public");
  const files: Record<string, string | Uint8Array> = {
    "index.html": "<h1>home</h1>\n",
    "robots.txt": "User-agent: *\n",
    "logo.png": PNG,
    "assets/application-3b4c5d6e.css": "body { color: red }\n",
    "assets/index-B1x2Yz9Q.js": "console.log(1)\n",
    "assets/site.css": "body {}\n",
    "docs/index.html": "<h1>docs</h1>\n",
    "files/données.pdf": "%PDF-1.4\n",
    "page.html": "<p>static</p>\n".repeat(300), // worth compressing
    "empty/.keep": "",
    "blank.txt": "",
    ".env": "SECRET=top secret\n",
  };
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(publicDir, name, ".."), { recursive: true });
    writeFileSync(join(publicDir, name), content);
  }
  writeFileSync(join(dir, "secret.txt"), "top secret\n");
  symlinkSync(join(dir, "secret.txt"), join(publicDir, "link-out.txt"));
  symlinkSync(join(publicDir, "robots.txt"), join(publicDir, "link-in.txt"));
  // Content-addressed storage: the names asked for are links to blobs without an extension.
  mkdirSync(join(publicDir, "blobs"));
  writeFileSync(join(publicDir, "blobs/sha256-9f86d081"), "%PDF-1.4 blob\n");
  symlinkSync("blobs/sha256-9f86d081", join(publicDir, "guide.pdf"));
  symlinkSync("blobs/sha256-9f86d081", join(publicDir, "guide-1a2b3c4d.pdf"));
  writeFileSync(join(publicDir, "locked.txt"), "locked\n");
  chmodSync(join(publicDir, "locked.txt"), 0o000);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function start(target: (typeof TARGETS)[number], options: { env?: Record<string, string>; waitReady?: boolean } = {}): Promise<Sluice> {
  return startSluice(target, { args: ["--shutdown-delay", "0", "--public-dir", publicDir], child: FILES_APP, ...options });
}

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  expect(await sluice.exitCode()).toBe(0);
}

/** Sends `target` as it is, on a raw connection (fetch would normalize it); returns status and body. */
function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n`);
    });
    let data = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => (data += chunk));
    socket.on("end", () => {
      const head = data.slice(0, data.indexOf("\r\n\r\n"));
      resolve({ status: Number(head.split(" ")[1]), body: data.slice(head.length + 4) });
    });
    socket.on("error", reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error(`no answer to ${target}`)));
  });
}

/** How a response ended: cleanly (the final chunk of a chunked body came), or cut. */
interface ShrunkAnswer {
  head: string;
  finalChunk: boolean;
  bodyBytes: number;
}

/**
 * Asks for `target` on a raw connection and stops reading at its first bytes; meanwhile
 * `file` is cut to 1,000 bytes; then reads on until the server ends or cuts the connection.
 * Rejects when nothing happens for `stallMs`.
 */
function readWhileShrinking(port: number, target: string, file: string, acceptEncoding: string, stallMs = 30_000): Promise<ShrunkAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: ${acceptEncoding}\r\nConnection: close\r\n\r\n`);
    });
    const chunks: Buffer[] = [];
    let shrunk = false;
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      if (shrunk) return;
      shrunk = true;
      socket.pause(); // the server's sending stalls on the full socket while the file shrinks
      truncateSync(file, 1000);
      setImmediate(() => socket.resume());
    });
    const finish = () => {
      const data = Buffer.concat(chunks).toString("latin1");
      const headEnd = data.indexOf("\r\n\r\n");
      resolve({ head: data.slice(0, headEnd).toLowerCase(), finalChunk: data.endsWith("\r\n0\r\n\r\n"), bodyBytes: data.length - headEnd - 4 });
    };
    socket.on("close", finish);
    socket.on("error", () => {}); // a reset is a cut: "close" follows
    socket.setTimeout(stallMs, () => {
      socket.destroy();
      reject(new Error(`${target}: nothing for ${stallMs} ms after the file shrank`));
    });
  });
}

describe.each(TARGETS)("static files ($name)", (target) => {
  test("files come with their type and validators; fingerprinted names are immutable, others not", async () => {
    const sluice = await start(target);
    const expectations: [string, string, string | null][] = [
      ["/robots.txt", "text/plain; charset=utf-8", null],
      ["/logo.png", "image/png", null],
      ["/assets/site.css", "text/css; charset=utf-8", null],
      ["/assets/application-3b4c5d6e.css", "text/css; charset=utf-8", IMMUTABLE],
      ["/assets/index-B1x2Yz9Q.js", "text/javascript; charset=utf-8", IMMUTABLE],
    ];
    for (const [path, type, cacheControl] of expectations) {
      const response = await fetch(`${sluice.url}${path}`, { headers: { "accept-encoding": "identity" } });
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe(type);
      expect(response.headers.get("cache-control")).toBe(cacheControl);
      expect(response.headers.get("etag")).toBeTruthy();
      expect(response.headers.get("last-modified")).toBeTruthy();
      expect(response.headers.get("x-request-id")).toBeTruthy();
      await response.arrayBuffer();
    }
    expect(new Uint8Array(await (await fetch(`${sluice.url}/logo.png`)).arrayBuffer())).toEqual(PNG);
    // No Content-Disposition of Bun.serve's own (it adds one for a named file of such a type).
    const download = await fetch(`${sluice.url}/files/données.pdf`);
    expect(await download.text()).toBe("%PDF-1.4\n");
    expect(download.headers.get("content-disposition")).toBeNull();
    const etag = (await fetch(`${sluice.url}/robots.txt`).then(async (r) => (await r.arrayBuffer(), r))).headers.get("etag")!;
    expect((await fetch(`${sluice.url}/robots.txt`, { headers: { "if-none-match": etag } })).status).toBe(304);
    const partial = await fetch(`${sluice.url}/robots.txt`, { headers: { range: "bytes=0-9" } });
    expect(partial.status).toBe(206);
    expect(await partial.text()).toBe("User-agent");
    const head = await fetch(`${sluice.url}/robots.txt`, { method: "HEAD" });
    expect(head.headers.get("content-length")).toBe("14");
    expect(await head.text()).toBe("");
    // A symlink to a file inside the directory is followed.
    expect(await (await fetch(`${sluice.url}/link-in.txt`)).text()).toBe("User-agent: *\n");
    await stop(sluice);
  }, 60_000);

  test("a fingerprinted file's 412 and 416 are not marked cacheable for a year; its 200, 206 and 304 are", async () => {
    const sluice = await start(target);
    const url = `${sluice.url}/assets/application-3b4c5d6e.css`;
    const answer = async (headers: Record<string, string>) => {
      const response = await fetch(url, { headers: { "accept-encoding": "identity", ...headers } });
      await response.arrayBuffer();
      return [response.status, response.headers.get("cache-control")];
    };
    const etag = (await fetch(url).then(async (r) => (await r.arrayBuffer(), r))).headers.get("etag")!;
    expect(await answer({})).toEqual([200, IMMUTABLE]);
    expect(await answer({ range: "bytes=0-3" })).toEqual([206, IMMUTABLE]);
    expect(await answer({ "if-none-match": etag })).toEqual([304, IMMUTABLE]);
    expect(await answer({ "if-match": '"other"' })).toEqual([412, null]);
    expect(await answer({ "if-unmodified-since": "Mon, 01 Jan 2001 00:00:00 GMT" })).toEqual([412, null]);
    expect(await answer({ range: "bytes=1000-" })).toEqual([416, null]);
    await stop(sluice);
  }, 60_000);

  test("a symlink's file is typed and cached by the name asked for, not by its target's", async () => {
    const sluice = await start(target);
    for (const [path, cacheControl] of [["/guide.pdf", null], ["/guide-1a2b3c4d.pdf", IMMUTABLE]] as const) {
      const response = await fetch(`${sluice.url}${path}`, { headers: { "accept-encoding": "identity" } });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("%PDF-1.4 blob\n");
      expect(response.headers.get("content-type")).toBe("application/pdf");
      expect(response.headers.get("cache-control")).toBe(cacheControl);
    }
    await stop(sluice);
  }, 60_000);

  test("an empty file: a suffix range is satisfiable but ignored (200), one from an offset is not (416)", async () => {
    const sluice = await start(target);
    const suffix = await fetch(`${sluice.url}/blank.txt`, { headers: { range: "bytes=-5" } });
    expect(suffix.status).toBe(200);
    expect(suffix.headers.get("content-length")).toBe("0");
    expect(suffix.headers.get("content-range")).toBeNull();
    expect(await suffix.text()).toBe("");
    const offset = await fetch(`${sluice.url}/blank.txt`, { headers: { range: "bytes=0-" } });
    expect(offset.status).toBe(416);
    expect(offset.headers.get("content-range")).toBe("bytes */0");
    await offset.arrayBuffer();
    await stop(sluice);
  }, 60_000);

  test("index.html for a path ending in /; no listing; anything else goes to the app", async () => {
    const sluice = await start(target);
    expect(await (await fetch(`${sluice.url}/`)).text()).toBe("<h1>home</h1>\n");
    expect(await (await fetch(`${sluice.url}/docs/`)).text()).toBe("<h1>docs</h1>\n");
    for (const path of ["/docs", "/empty/", "/missing.txt", "/assets/missing.css?v=1"]) {
      const response = await fetch(`${sluice.url}${path}`);
      expect(response.status).toBe(404);
      expect(await response.text()).toBe(`app: ${path}\n`);
    }
    const post = await fetch(`${sluice.url}/robots.txt`, { method: "POST", body: "x" });
    expect(await post.text()).toBe("app: /robots.txt\n");
    await stop(sluice);
  }, 60_000);

  test("traversal attempts, dotfiles and symlinks leading out never reveal a file outside", async () => {
    const sluice = await start(target);
    const attempts = [
      "/../secret.txt",
      "/assets/../../secret.txt",
      "/%2e%2e/secret.txt",
      "/%2E%2E/%2e%2e/secret.txt",
      "/assets/..%2f..%2fsecret.txt",
      "/..%5csecret.txt",
      "/assets\\..\\..\\secret.txt",
      "/robots.txt%00.png",
      "//secret.txt",
      "/link-out.txt",
      "/.env",
    ];
    for (const attempt of attempts) {
      const { status, body } = await rawGet(sluice.httpPort, attempt);
      expect(body).not.toContain("top secret");
      // Not served: the request went on to the app.
      expect(status).toBe(404);
      expect(body).toStartWith("app: ");
    }
    await stop(sluice);
  }, 60_000);

  test("an absolute-form target with a query and no path is the path /, not a path its query names", async () => {
    const sluice = await start(target);
    for (const query of ["?z=/robots.txt", "?z=/docs/"]) {
      const { status, body } = await rawGet(sluice.httpPort, `http://127.0.0.1:${sluice.httpPort}${query}`);
      expect(status).toBe(200);
      expect(body).toBe("<h1>home</h1>\n"); // the index.html of /, not the file the query names
    }
    await stop(sluice);
  }, 60_000);

    test("a file sluice may not read goes on to the app, never Bun's 500 with its path", async () => {
    const sluice = await start(boundByPermissions(target));
    for (const method of ["GET", "HEAD"]) {
      const response = await fetch(`${sluice.url}/locked.txt`, { method });
      expect(response.status).toBe(404);
      expect(await response.text()).toBe(method === "GET" ? "app: /locked.txt\n" : "");
    }
    expect(await (await fetch(`${sluice.url}/robots.txt`)).text()).toBe("User-agent: *\n");
    await stop(sluice);
  }, 60_000);

  // Headers and bytes come from one open file: under Deno a stream of it, on the binary its
  // bytes read whole (a small file; a larger one goes by path with sendfile, docs/runtime-notes.md).
  test("a file renamed over again and again is always sent as one whole version", async () => {
    const sluice = await start(target);
    const file = join(publicDir, "renamed.txt");
    // Each version starts with its own length, in five digits.
    const churn = Bun.spawn([BUN, "-e", `
      const fs = require("node:fs");
      const until = Date.now() + 30_000;
      for (let i = 0; Date.now() < until; i++) {
        const length = 100 + ((i * 7) % 400);
        fs.writeFileSync(${JSON.stringify(file)} + ".new", String(length).padStart(5, "0") + "x".repeat(length - 5));
        fs.renameSync(${JSON.stringify(file)} + ".new", ${JSON.stringify(file)});
      }`], { stdout: "ignore", stderr: "ignore" });
    track(churn.pid);
    try {
      await until(() => existsSync(file), 10_000, "the first version");
      const mixed: string[] = [];
      for (let i = 0; i < 300; i++) {
        const response = await fetch(`${sluice.url}/renamed.txt`, { headers: { "accept-encoding": "identity" } });
        const body = await response.text();
        expect(response.status).toBe(200);
        if (Number(body.slice(0, 5)) !== body.length) mixed.push(`${body.slice(0, 5)} in ${body.length} bytes`);
      }
      expect(mixed).toEqual([]);
    } finally {
      churn.kill();
      await churn.exited;
    }
    await stop(sluice);
  }, 90_000);

  test("a HEAD for a file its GET would compress has the GET's headers: Content-Encoding, weak ETag, Vary, no length", async () => {
    const sluice = await start(target);
    const get = await fetch(`${sluice.url}/page.html`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    await get.arrayBuffer();
    expect(get.headers.get("content-encoding")).toBe("gzip");
    const head = await fetch(`${sluice.url}/page.html`, { method: "HEAD", headers: { "accept-encoding": "gzip" } });
    expect(head.status).toBe(200);
    for (const name of ["content-encoding", "etag", "vary", "content-type", "last-modified"]) expect(head.headers.get(name)).toBe(get.headers.get(name));
    expect(head.headers.get("etag")).toStartWith('W/"');
    expect(head.headers.get("content-length")).toBeNull();
    expect(head.headers.get("accept-ranges")).toBeNull();
    await stop(sluice);
  }, 60_000);

  test("a HEAD with Range gets the headers of the GET without it: 200, whole length, compressed ones too", async () => {
    const sluice = await start(target);
    for (const range of ["bytes=0-9", "bytes=100000-"]) {
      const head = await fetch(`${sluice.url}/robots.txt`, { method: "HEAD", headers: { range, "accept-encoding": "identity" } });
      expect(head.status).toBe(200);
      expect(head.headers.get("content-length")).toBe("14");
      expect(head.headers.get("content-range")).toBeNull();
    }
    const plain = await fetch(`${sluice.url}/page.html`, { method: "HEAD", headers: { "accept-encoding": "gzip" } });
    const ranged = await fetch(`${sluice.url}/page.html`, { method: "HEAD", headers: { "accept-encoding": "gzip", range: "bytes=0-9" } });
    expect(ranged.status).toBe(200);
    for (const name of ["content-encoding", "etag", "vary", "content-length", "content-range"]) expect(ranged.headers.get(name)).toBe(plain.headers.get(name));
    expect(ranged.headers.get("content-encoding")).toBe("gzip");
    await stop(sluice);
  }, 60_000);

  test("a file replaced within the same second by one of the same size gets a new ETag: a resumed download is not spliced", async () => {
    const sluice = await start(target);
    const file = join(publicDir, "replaced.txt");
    const second = Math.floor(Date.now() / 1000) - 60;
    const put = (content: string, mtime: number) => {
      writeFileSync(`${file}.new`, content);
      utimesSync(`${file}.new`, mtime, mtime);
      renameSync(`${file}.new`, file);
    };
    put("version-1 aaaaaaaaaa\n", second + 0.1);
    const first = await fetch(`${sluice.url}/replaced.txt`, { headers: { "accept-encoding": "identity" } });
    expect(await first.text()).toBe("version-1 aaaaaaaaaa\n");
    put("version-2 bbbbbbbbbb\n", second + 0.7);
    const resumed = await fetch(`${sluice.url}/replaced.txt`, { headers: { "accept-encoding": "identity", range: "bytes=10-", "if-range": first.headers.get("etag")! } });
    expect(resumed.status).toBe(200);
    expect(await resumed.text()).toBe("version-2 bbbbbbbbbb\n");
    expect(resumed.headers.get("etag")).not.toBe(first.headers.get("etag"));
    expect(resumed.headers.get("last-modified")).toBe(first.headers.get("last-modified")); // the same second
    const revalidated = await fetch(`${sluice.url}/replaced.txt`, { headers: { "accept-encoding": "identity", "if-none-match": first.headers.get("etag")! } });
    expect(revalidated.status).toBe(200);
    await revalidated.arrayBuffer();
    await stop(sluice);
  }, 60_000);

  test("a modification time in the future is sent as the time of the answer, so a later replacement is not answered 304", async () => {
    const sluice = await start(target);
    const file = join(publicDir, "ahead.txt");
    const future = new Date("2030-01-01T00:00:00Z");
    writeFileSync(file, "built on a machine whose clock is ahead\n");
    utimesSync(file, future, future);
    const first = await fetch(`${sluice.url}/ahead.txt`, { headers: { "accept-encoding": "identity" } });
    await first.arrayBuffer();
    const lastModified = first.headers.get("last-modified")!;
    expect(Date.parse(lastModified)).toBeLessThanOrEqual(Date.now());
    // The next deploy's file, made now with a right clock: a client revalidating with the
    // Last-Modified it got must get it.
    await Bun.sleep(1_100);
    writeFileSync(`${file}.new`, "rebuilt with a right clock\n");
    renameSync(`${file}.new`, file);
    const revalidated = await fetch(`${sluice.url}/ahead.txt`, { headers: { "accept-encoding": "identity", "if-modified-since": lastModified } });
    expect(revalidated.status).toBe(200);
    expect(await revalidated.text()).toBe("rebuilt with a right clock\n");
    await stop(sluice);
  }, 60_000);

  test("a 304 carries the ETag and Vary of the 200 it stands for, compressed or not", async () => {
    const sluice = await start(target);
    const get = await fetch(`${sluice.url}/page.html`, { headers: { "accept-encoding": "gzip" }, decompress: false } as RequestInit);
    await get.arrayBuffer();
    const weak = get.headers.get("etag")!;
    expect(weak).toStartWith('W/"');
    const revalidated = await fetch(`${sluice.url}/page.html`, { headers: { "accept-encoding": "gzip", "if-none-match": weak } });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get("etag")).toBe(weak);
    expect(revalidated.headers.get("vary")).toBe("Accept-Encoding");
    expect(revalidated.headers.get("content-encoding")).toBeNull();
    // Not compressed for this client: the strong tag, as its 200 has.
    const identity = await fetch(`${sluice.url}/page.html`, { headers: { "accept-encoding": "identity", "if-none-match": weak } });
    expect(identity.status).toBe(304);
    expect(identity.headers.get("etag")).toBe(weak.slice(2));
    expect(identity.headers.get("vary")).toBe("Accept-Encoding");
    await stop(sluice);
  }, 60_000);

  test("a file that shrinks while it is sent compressed is cut, never ended as if whole", async () => {
    const sluice = await start(target);
    const file = join(publicDir, "shrinking.txt");
    writeFileSync(file, randomBytes(24 * 1024 * 1024).toString("base64")); // 32 MiB of text, compressible
    const answer = await readWhileShrinking(sluice.httpPort, "/shrinking.txt", file, "gzip");
    expect(answer.head).toContain("content-encoding: gzip");
    expect(answer.finalChunk).toBe(false);
    await stop(sluice);
  }, 60_000);

  test("files are answered while the child is not ready; other requests wait for it", async () => {
    const sluice = await start(target, { env: { APP_BIND_DELAY_MS: "60000" }, waitReady: false });
    await sluice.waitFor("listening");
    const started = performance.now();
    const response = await fetch(`${sluice.url}/robots.txt`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("User-agent: *\n");
    expect(performance.now() - started).toBeLessThan(5_000);
    // A request for the app is held meanwhile (until --hold-timeout, 30 s).
    await expect(fetch(`${sluice.url}/missing.txt`, { signal: AbortSignal.timeout(1_000) })).rejects.toThrow();
    expect(sluice.records.some((r) => r.event === "ready")).toBe(false);
    await stop(sluice);
  }, 60_000);
});
