/**
 * @module The project's layering, as DESIGN.md sets it: only src/runtime/ touches Bun.* or
 * Deno.*, and nothing in src/ imports a node: module (the code runs on both runtimes through
 * the Runtime interface). Comments may name the runtimes' APIs; code may not.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../harness.ts";

/** Each source file's text without its comments. */
function sources(): { path: string; code: string }[] {
  return Array.from(new Bun.Glob("src/**/*.ts").scanSync(ROOT), (path) => ({
    path,
    code: readFileSync(join(ROOT, path), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1"),
  }));
}

test("nothing in src/ imports a node: module", () => {
  const offenders = sources().filter(({ code }) => /\bfrom\s+["']node:|\bimport\(\s*["']node:|\brequire\(/.test(code));
  expect(offenders.map((file) => file.path)).toEqual([]);
});

test("only src/runtime/ uses Bun.* or Deno.*", () => {
  const offenders = sources()
    .filter(({ path }) => !path.startsWith("src/runtime/"))
    .flatMap(({ path, code }) => (code.match(/\b(?:Bun|Deno)\.[A-Za-z]\w*/g) ?? []).map((use) => `${path}: ${use}`));
  expect(offenders).toEqual([]);
});
