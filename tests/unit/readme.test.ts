/** @module The README stays true: its option table and exit codes come from the code. */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { optionsTable, thrusterTable } from "../../scripts/options-table.ts";
import { parseArgs } from "../../src/cli.ts";
import { resolveConfig, stopBudget } from "../../src/config.ts";
import { ExitCode } from "../../src/exit-codes.ts";

const readme = readFileSync(join(import.meta.dir, "../../README.md"), "utf8");

test("the README's option table is the one generated from src/config.ts", () => {
  const between = readme.split("<!-- options:start -->\n")[1]?.split("\n<!-- options:end -->")[0];
  expect(between).toBe(optionsTable());
});

test("the README's table of thruster's variables is the one generated from src/config.ts", () => {
  const between = readme.split("<!-- thruster:start -->\n")[1]?.split("\n<!-- thruster:end -->")[0];
  expect(between).toBe(thrusterTable());
});

test("the README documents every exit code", () => {
  for (const code of Object.values(ExitCode)) expect(readme).toContain(`| ${code} |`);
});

test("the budget the README suggests for Docker's default stop timeout (10 s) fits it", () => {
  const docker = readme.slice(readme.indexOf("- **Docker**: the stop timeout"), readme.indexOf("`sluice check --grace-period 30s` prints"));
  const flags = /lower the budget, e\.g\.\s+`([^`]+)`/.exec(docker)?.[1];
  expect(flags).toBeDefined();
  const { flags: sources } = parseArgs([...flags!.split(/\s+/), "--", "app"]);
  const config = resolveConfig(sources, {}, ["app"]);
  expect(stopBudget(config).totalMs).toBeLessThanOrEqual(10_000);
});
