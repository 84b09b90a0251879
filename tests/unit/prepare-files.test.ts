/**
 * @module prepareFiles: real paths of the served directories and the error pages, and the
 * errors that name the option and the path (start, check and reload all go through it).
 */

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, type OptionKey, OPTIONS, type OptionSources, resolveConfig } from "../../src/config.ts";
import { changedFiles, prepareFiles } from "../../src/files/prepare-files.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-prepare-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, "public"));
mkdirSync(join(dir, "files"));
symlinkSync(join(dir, "files"), join(dir, "files-link"));
writeFileSync(join(dir, "public/502.html"), "<h1>502</h1>");
writeFileSync(join(dir, "plain.txt"), "x");

/** A config from flags, as the CLI resolves it. */
function configOf(flags: Partial<Record<OptionKey, string>>) {
  const sources: OptionSources = {};
  for (const [key, text] of Object.entries(flags)) sources[key as OptionKey] = { text, from: `--${OPTIONS[key as OptionKey].name}` };
  return resolveConfig(sources, {}, ["app"]);
}

async function failure(flags: Partial<Record<OptionKey, string>>): Promise<string> {
  try {
    await prepareFiles(configOf(flags), bunRuntime);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("prepareFiles did not fail");
}

describe("prepareFiles", () => {
  test("directories become real paths; pages are read; a default page that is absent is no page", async () => {
    const files = await prepareFiles(
      configOf({
        xSendfileDirs: `${dir}/files-link, ${dir}/public/../files`,
        publicDir: `${dir}/public`,
        badGatewayPage: `${dir}/public/502.html`,
      }),
      bunRuntime,
    );
    expect(files.sendfileDirs).toEqual([`${dir}/files`, `${dir}/files`]);
    expect(files.publicDir).toBe(`${dir}/public`);
    expect(files.pages).toEqual({ 502: "<h1>502</h1>" }); // 503 and 504 keep their absent defaults
  });

  test("X-Sendfile off: its directories are not looked at", async () => {
    const files = await prepareFiles(configOf({ xSendfile: "false", xSendfileDirs: `${dir}/nope` }), bunRuntime);
    expect(files.sendfileDirs).toEqual([]);
  });

  test("a missing or unreadable explicit page, or a bad directory, is an error naming the option and the path", async () => {
    expect(await failure({ unavailablePage: `${dir}/missing.html` })).toBe(
      `Cannot read the error page ${dir}/missing.html (--unavailable-page): no such file`,
    );
    expect(await failure({ gatewayTimeoutPage: `${dir}/public` })).toContain(`${dir}/public (--gateway-timeout-page): it is a directory`);
    expect(await failure({ publicDir: `${dir}/nope` })).toBe(`Cannot serve files from --public-dir: no such directory; current value is "${dir}/nope"`);
    expect(await failure({ publicDir: `${dir}/plain.txt` })).toContain("not a directory");
    expect(await failure({ xSendfileDirs: `${dir}/files,${dir}/nope` })).toContain(`no such directory; current value is "${dir}/nope"`);
  });

  test("a page that is a pipe or a device is refused: every reload would read it again, and waited for ever", async () => {
    const fifo = join(dir, "page.fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // No writer: reading it would wait for ever. The check is made before any read.
    expect(await failure({ badGatewayPage: fifo })).toBe(
      `Cannot read the error page ${fifo} (--bad-gateway-page): not a regular file (a pipe or a device, which every reload would read again)`,
    );
    expect(await failure({ gatewayTimeoutPage: "/dev/null" })).toStartWith("Cannot read the error page /dev/null (--gateway-timeout-page): not a regular file");
    // A symlink to a regular page is a regular page.
    symlinkSync(join(dir, "public/502.html"), join(dir, "page-link.html"));
    expect((await prepareFiles(configOf({ badGatewayPage: join(dir, "page-link.html") }), bunRuntime)).pages[502]).toBe("<h1>502</h1>");
  });
});

describe("a directory this user cannot search", () => {
  // As a user other than its owner (a directory of mode 700): it resolved, or read "no such
  // directory" when one above it was so, and then every file in it went to the app.
  const denied = (path: string) => path.startsWith(join(dir, "public")) || path.startsWith(join(dir, "files"));
  const disk = {
    ...bunRuntime,
    readTextFile: (path: string) => denied(path) ? Promise.reject(Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" })) : bunRuntime.readTextFile(path),
  };
  test("is refused naming the option and the path, when given on purpose", async () => {
    for (const [flags, source, path] of [
      [{ publicDir: join(dir, "public") }, "--public-dir", join(dir, "public")],
      [{ xSendfileDirs: `${dir},${join(dir, "files")}` }, "--x-sendfile-dirs", join(dir, "files")],
    ] as const) {
      expect(prepareFiles(configOf(flags), disk)).rejects.toThrow(
        new ConfigError(`Cannot serve files from ${source}: permission denied (this user cannot open files in it); current value is "${path}"`),
      );
    }
  });
  test("is not refused as the default --x-sendfile-dirs (the working directory): an app that sends no file still starts", async () => {
    const everywhere = (path: string) => path.endsWith("/.sluice-permission-probe") ? Promise.reject(Object.assign(new Error("EACCES"), { code: "EACCES" })) : bunRuntime.readTextFile(path);
    const inPublic = { ...disk, readTextFile: everywhere };
    expect((await prepareFiles(configOf({}), inPublic)).sendfileDirs).toHaveLength(1);
  });
});

describe("changedFiles", () => {
  const prepared = async (flags: Partial<Record<OptionKey, string>>) => {
    const config = configOf(flags);
    return { ...config, files: await prepareFiles(config, bunRuntime) };
  };

  test("names the directories that moved and the pages that changed, not X-Sendfile turned on or off", async () => {
    const base = { xSendfileDirs: join(dir, "files-link"), publicDir: join(dir, "files-link") };
    const before = await prepared(base);
    expect(changedFiles(before, await prepared(base))).toEqual([]);
    // The same paths, other real directories: a `current` symlink moved.
    const moved = await prepared(base);
    moved.files = { ...moved.files, sendfileDirs: [join(dir, "public")], publicDir: join(dir, "public") };
    expect(changedFiles(before, moved)).toEqual(["xSendfileDirs", "publicDir"]);
    const page = await prepared(base);
    page.files = { ...page.files, pages: { 502: "<h1>new</h1>" } };
    expect(changedFiles(before, page)).toEqual(["badGatewayPage"]);
    // Off, the directories are not resolved: that is a change of --x-sendfile alone.
    expect(changedFiles(before, await prepared({ ...base, xSendfile: "false" }))).toEqual([]);
  });
});
