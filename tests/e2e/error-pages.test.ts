/**
 * @module Error pages through sluice, on the binary and under Deno: sluice's own 502 (child
 * down), 504 (upstream timeout) and 503 (hold timeout) come as the configured HTML pages; the
 * app's own 502 passes through untouched; a missing explicit page stops the start (and check)
 * with the configuration exit code, naming the option and the path; a reload re-reads pages.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../../src/exit-codes.ts";
import { runSluice, type Sluice, startSluice, TARGETS, tempDir, track } from "../harness.ts";

const PAGES = { 502: "<h1>We will be right back</h1>\n", 503: "<h1>Starting up</h1>\n", 504: "<h1>Too slow</h1>\n" };

let dir: string;
let pageArgs: string[];
beforeAll(() => {
  dir = tempDir();
  for (const [status, html] of Object.entries(PAGES)) writeFileSync(join(dir, `${status}.html`), html);
  pageArgs = [
    "--bad-gateway-page", join(dir, "502.html"),
    "--unavailable-page", join(dir, "503.html"),
    "--gateway-timeout-page", join(dir, "504.html"),
  ];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function stop(sluice: Sluice): Promise<void> {
  sluice.signal("SIGTERM");
  await sluice.exitCode();
}

async function expectPage(response: Response, status: 502 | 503 | 504): Promise<void> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
  expect(response.headers.get("x-request-id")).toBeTruthy();
  expect(await response.text()).toBe(PAGES[status]);
}

describe.each(TARGETS)("error pages ($name)", (target) => {
  test("child down: 502 page; upstream timeout: 504 page; the app's own 502 untouched", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--upstream-timeout", "1s", ...pageArgs] });
    const own = await fetch(`${sluice.url}/status?code=502`);
    expect(own.status).toBe(502);
    expect(own.headers.get("content-type")).toBeNull();
    expect(await own.text()).toBe("");
    await expectPage(await fetch(`${sluice.url}/hang`), 504);
    await (await fetch(`${sluice.url}/close-listener`)).text();
    await expectPage(await fetch(`${sluice.url}/after-close`), 502);
    await stop(sluice);
  }, 60_000);

  test("a page goes with its own Content-Length: under --compression-min-size it is not compressed, and a HEAD gets the length", async () => {
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--upstream-timeout", "300ms", ...pageArgs] });
    const response = await fetch(`${sluice.url}/hang`, { headers: { "accept-encoding": "gzip, br, zstd" }, decompress: false } as RequestInit);
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(response.headers.get("content-length")).toBe(String(PAGES[504].length));
    await expectPage(response, 504);
    const head = await fetch(`${sluice.url}/hang`, { method: "HEAD" });
    expect(head.status).toBe(504);
    expect(head.headers.get("content-length")).toBe(String(PAGES[504].length));
    await stop(sluice);
  }, 60_000);

  test("hold timeout: 503 page with Retry-After", async () => {
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0", "--hold-timeout", "500ms", ...pageArgs],
      env: { APP_BIND_DELAY_MS: "60000" },
      waitReady: false,
    });
    await sluice.waitFor("listening");
    const response = await fetch(`${sluice.url}/`);
    expect(response.headers.get("retry-after")).toBe("1");
    await expectPage(response, 503);
    await stop(sluice);
  }, 60_000);

  test("without pages sluice answers plain text, as before", async () => {
    // The default paths (public/50x.html under the working directory) do not exist here.
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--upstream-timeout", "500ms"] });
    const response = await fetch(`${sluice.url}/hang`);
    expect(response.status).toBe(504);
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await response.text()).toBe("Gateway Timeout\n");
    await stop(sluice);
  }, 60_000);

  test("a missing explicit page stops the start and check with the configuration exit code, naming option and path", async () => {
    const missing = join(dir, "missing.html");
    const cases: [string[], Record<string, string>, string][] = [
      [["--bad-gateway-page", missing], {}, "--bad-gateway-page"],
      [[], { SLUICE_UNAVAILABLE_PAGE: missing }, "SLUICE_UNAVAILABLE_PAGE"],
      [[], { BAD_GATEWAY_PAGE: missing }, "BAD_GATEWAY_PAGE"], // thruster's variable
    ];
    for (const [args, env, source] of cases) {
      const started = await runSluice(target, [...args, "--", "true"], env);
      expect(started.code).toBe(ExitCode.STARTUP_FAILED);
      expect(started.stderr).toContain(`Cannot read the error page ${missing} (${source}): no such file`);
      const checked = await runSluice(target, ["check", ...args], env);
      expect(checked.code).toBe(ExitCode.STARTUP_FAILED);
      expect(checked.stderr).toContain(`${missing} (${source})`);
    }
  }, 60_000);

  test("a page that is a pipe or a device is refused at start and by check, naming it", async () => {
    // Read again by every reload: with no writer left the reload waited for ever, and no
    // reload after it ran; /dev/zero filled the memory.
    const fifo = join(tempDir(), "page.fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const writer = Bun.spawn(["sh", "-c", `echo '<h1>down</h1>' > '${fifo}'`]); // a page for a read, were there one
    track(writer.pid);
    try {
      const checked = await runSluice(target, ["check", "--bad-gateway-page", fifo]);
      expect(checked.code).toBe(ExitCode.STARTUP_FAILED);
      expect(checked.stderr).toBe(
        `sluice: Cannot read the error page ${fifo} (--bad-gateway-page): not a regular file (a pipe or a device, which every reload would read again)\n`,
      );
      const started = await runSluice(target, ["--unavailable-page", "/dev/null", "--", "true"]);
      expect(started.code).toBe(ExitCode.STARTUP_FAILED);
      expect(started.stderr).toContain("Cannot read the error page /dev/null (--unavailable-page): not a regular file");
    } finally {
      writer.kill();
    }
  }, 60_000);

  test("a reload re-reads the pages; one that went missing fails the reload and the old page stays", async () => {
    const page = join(dir, "reloaded-504.html");
    writeFileSync(page, "<p>first</p>\n");
    const sluice = await startSluice(target, { args: ["--shutdown-delay", "0", "--upstream-timeout", "300ms", "--gateway-timeout-page", page] });
    expect(await (await fetch(`${sluice.url}/hang`)).text()).toBe("<p>first</p>\n");
    unlinkSync(page);
    sluice.signal("SIGHUP");
    const failed = await sluice.waitFor("reload");
    expect(failed.result).toBe("error");
    expect(String(failed.error)).toContain(`${page} (--gateway-timeout-page): no such file`);
    expect(await (await fetch(`${sluice.url}/hang`)).text()).toBe("<p>first</p>\n");
    writeFileSync(page, "<p>second</p>\n");
    sluice.signal("SIGHUP");
    await sluice.waitFor((r) => r.event === "reload" && r.result === "ok");
    expect(await (await fetch(`${sluice.url}/hang`)).text()).toBe("<p>second</p>\n");
    await stop(sluice);
  }, 60_000);
});
