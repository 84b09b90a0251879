/**
 * @module The README's install instructions: `./compile.sh --all` builds every release target
 * and SHA256SUMS, and the README's own checksum command accepts them and rejects a damaged
 * download, naming it.
 */

import { beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, track } from "../harness.ts";

const TARGETS = ["linux-x64", "linux-arm64", "linux-x64-musl", "linux-arm64-musl", "darwin-x64", "darwin-arm64"];

/** The checksum command of the README's Install section, as a user would copy it. */
function documentedCheck(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const install = readme.slice(readme.indexOf("## Install"), readme.indexOf("\n## ", readme.indexOf("## Install") + 1));
  const line = install.split("\n").find((l) => l.startsWith("sha256sum "));
  if (!line) throw new Error("README's Install section has no sha256sum command");
  return line.replace(/\s+#.*$/, "");
}

async function sh(command: string, cwd: string) {
  const proc = Bun.spawn(["sh", "-c", command], { cwd, stdout: "pipe", stderr: "pipe" });
  track(proc.pid);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, output: stdout + stderr };
}

beforeAll(async () => {
  const build = await sh("./compile.sh --all", ROOT);
  if (build.code !== 0) throw new Error(`./compile.sh --all failed: ${build.output}`);
}, 600_000);

test("every release target is built and passes the README's checksum command", async () => {
  const check = documentedCheck();
  expect(check).toBe("sha256sum --check --ignore-missing SHA256SUMS");
  const { code, output } = await sh(check, join(ROOT, "dist"));
  expect(code).toBe(0);
  for (const target of TARGETS) expect(output).toContain(`sluice-${target}: OK`);
  const version = await sh("./sluice-linux-x64 version", join(ROOT, "dist"));
  expect(version.output).toMatch(/^sluice \d+\.\d+\.\d+ \(commit \w+, bun \d/);
});

test("a damaged download fails the README's checksum command, which names it", async () => {
  const dir = mkdtempSync(join(ROOT, "dist/.install-test-"));
  try {
    copyFileSync(join(ROOT, "dist/SHA256SUMS"), join(dir, "SHA256SUMS"));
    const bytes = readFileSync(join(ROOT, "dist/sluice-linux-arm64"));
    bytes[bytes.length >> 1]! ^= 0xff; // one flipped byte in the middle
    writeFileSync(join(dir, "sluice-linux-arm64"), bytes);
    const { code, output } = await sh(documentedCheck(), dir);
    expect(code).not.toBe(0);
    expect(output).toContain("sluice-linux-arm64: FAILED");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
