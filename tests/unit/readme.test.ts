/** @module The README (and docs/) stay true: what they quote from the code is checked against it. */

import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { optionsTable, thrusterTable } from "../../scripts/options-table.ts";
import { budgetText, helpText, parseArgs } from "../../src/cli.ts";
import { envName, OPTIONS, resolveConfig, RESTART_OPTIONS, stopBudget } from "../../src/config.ts";
import { loadConfigFile } from "../../src/config-file.ts";
import { ExitCode } from "../../src/exit-codes.ts";
import { ProcessSignals } from "../../src/process-signals.ts";
import { IGNORED_SIGNALS } from "../../src/runtime/signals.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { Metrics } from "../../src/telemetry/metrics.ts";

const root = join(import.meta.dir, "../..");
const read = (path: string): string => readFileSync(join(root, path), "utf8");
const readme = read("README.md");
/** A README section: from its heading to the next heading of the same or a higher level. */
function section(heading: string): string {
  const start = readme.indexOf(`\n${heading}\n`);
  expect(start).toBeGreaterThanOrEqual(0);
  const level = heading.split(" ")[0]!;
  const rest = readme.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`\\n#{1,${level.length}} `));
  return end < 0 ? rest : rest.slice(0, end);
}
/** The `code` spans of a text. */
const spans = (text: string): string[] => [...text.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);

function docs(): string[] {
  return readdirSync(join(root, "docs")).filter((name) => name.endsWith(".md")).map((name) => `docs/${name}`);
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" }).filter((name) => name.endsWith(".ts")).map((name) => `${dir}/${name}`);
}

test("the README's option table is the one generated from src/config.ts", () => {
  const between = readme.split("<!-- options:start -->\n")[1]?.split("\n<!-- options:end -->")[0];
  expect(between).toBe(optionsTable());
});

test("the README's table of thruster's variables is the one generated from src/config.ts", () => {
  const between = readme.split("<!-- thruster:start -->\n")[1]?.split("\n<!-- thruster:end -->")[0];
  expect(between).toBe(thrusterTable());
});

test("the budget the README suggests for Docker's default stop timeout (10 s) fits it", () => {
  const docker = readme.slice(readme.indexOf("- **Docker**: the stop timeout"), readme.indexOf("`sluice check --grace-period 30s` prints"));
  const flags = /lower the budget, e\.g\.\s+`([^`]+)`/.exec(docker)?.[1];
  expect(flags).toBeDefined();
  const { flags: sources } = parseArgs([...flags!.split(/\s+/), "--", "app"]);
  const config = resolveConfig(sources, {}, ["app"]);
  expect(stopBudget(config).totalMs).toBeLessThanOrEqual(10_000);
});

test("the README's `sluice check` example is what sluice check prints", () => {
  const block = /```\n\$ (sluice check [^\n]*)\n([\s\S]*?)```/.exec(readme);
  expect(block).not.toBeNull();
  const args = block![1]!.split(/\s+/).slice(2);
  const { flags } = parseArgs([...args, "--", "app"]);
  expect(block![2]).toBe(`Configuration is valid.\n${budgetText(resolveConfig(flags, {}, ["app"]))}`);
});

test("the default stop budget the README quotes is the defaults' sum", () => {
  const total = stopBudget(resolveConfig({}, {}, ["app"])).totalMs / 1000;
  const quoted = [...readme.matchAll(/(\d+(?:\.\d+)?) s with the defaults|default budget (\d+(?:\.\d+)?) s/g)];
  expect(quoted.length).toBeGreaterThanOrEqual(2);
  for (const m of quoted) expect(Number(m[1] ?? m[2])).toBe(total);
});

test("the README's configuration file errors are the messages sluice gives for them", () => {
  const block = readme.slice(readme.indexOf("every error names"));
  const errors = /```\n([\s\S]*?)```/.exec(block)![1]!.split("\n").filter((line) => line.startsWith("sluice: "));
  /** What sluice says for a file whose line `line` is `text` (the lines before it valid). */
  const errorFor = (line: number, text: string): string => {
    const file = `${Array.from({ length: line - 1 }, () => "# a comment").join("\n")}\n${text}\n`;
    try {
      const { options } = loadConfigFile("/etc/sluice.toml", file);
      resolveConfig({}, {}, ["app"], { file: options });
    } catch (error) {
      return `sluice: ${(error as Error).message.split("\n")[0]}`;
    }
    return "no error";
  };
  const cases: [RegExp, string][] = [
    [/^sluice: Cannot parse \/etc\/sluice\.toml line (\d+) \(drain-timeout\).*"3x"$/, `drain-timeout = "3x"`],
    [/^sluice: Unknown key "drian-timeout" in \/etc\/sluice\.toml line (\d+) \(did you mean drain-timeout\?\)$/, `drian-timeout = "15s"`],
    [/^sluice: Invalid TOML in \/etc\/sluice\.toml line (\d+), column \d+: .*drain-timeout = "15s"\)$/, "drain-timeout = 15s"],
  ];
  for (const [pattern, text] of cases) {
    const quoted = errors.find((line) => pattern.test(line));
    expect(quoted).toBeDefined();
    expect(quoted).toBe(errorFor(Number(pattern.exec(quoted!)![1]), text));
  }
});

test("every metric the docs name is exported, and the README's /metrics list names every one", () => {
  const exported = new Set([...new Metrics().render().matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
  for (const doc of ["README.md", ...docs()]) {
    for (const [name] of read(doc).matchAll(/\bsluice_[a-z_]+/g)) expect({ doc, name, exported: exported.has(name) }).toEqual({ doc, name, exported: true });
  }
  const listed = new Set([...section("## Admin endpoints").matchAll(/\bsluice_[a-z_]+/g)].map((m) => m[0]));
  expect([...exported].filter((name) => !listed.has(name))).toEqual([]);
});

test("every label value the README says is exported from the start is", () => {
  const rendered = new Metrics().render();
  // `sluice_reloads_total{result="ok|error"}`: each value of the alternation.
  for (const [, name, label, values] of readme.matchAll(/`(sluice_[a-z_]+)\{([a-z]+)="([^"]+)"\}`/g)) {
    for (const value of values!.split("|")) expect(rendered).toContain(`${name}{${label}="${value}"}`);
  }
});

test("every log event the README names is one sluice emits", () => {
  const emitted = new Set<string>();
  for (const file of sourceFiles("src")) for (const m of read(file).matchAll(/\bevent: "([^"]+)"/g)) emitted.add(m[1]!);
  const logs = section("## Logs");
  const listed = spans(logs.slice(logs.indexOf("naming what happened:"), logs.indexOf("(a warning at the first span export")));
  const dotted = spans(readme).filter((s) => /^[a-z]+(\.[a-z-]+)+$/.test(s) && !/\.(toml|html|md|ts|yaml|json|js|css|service)$/.test(s));
  const quoted = [...readme.matchAll(/"event":"([^"]+)"/g)].map((m) => m[1]!);
  const named = new Set([...listed, ...dotted, ...quoted]);
  expect(named.size).toBeGreaterThanOrEqual(15);
  expect([...named].filter((event) => !emitted.has(event))).toEqual([]);
});

test("the signals the README says sluice handles are the ones it installs handlers for", () => {
  const installed: string[] = [];
  new ProcessSignals({ onSignal: (signal: string) => (installed.push(signal), () => {}), ignorableSignals: IGNORED_SIGNALS } as unknown as Runtime).install();
  // The table's first column: what sluice does on each signal.
  const rows = section("## Signals").split("\n").filter((line) => line.startsWith("| "));
  expect(new Set(rows.flatMap((row) => row.split("|")[1]!.match(/\bSIG[A-Z0-9]+\b/g) ?? []))).toEqual(new Set(installed));
  const pid1 = /sluice has handlers for ([A-Z][^.]+)\./.exec(readme)![1]!;
  const named = pid1.match(/\b[A-Z][A-Z0-9]+\b/g)!.map((name) => `SIG${name}`);
  expect(new Set([...named, ...(pid1.includes("the ignored ones") ? IGNORED_SIGNALS : [])])).toEqual(new Set(installed));
  // --help's summary ("Signals: TERM/INT stop gracefully, ..."); it named neither USR1 nor USR2.
  const summary = /^Signals: ([^]+?)\nExit codes:/m.exec(helpText())![1]!;
  expect(new Set(summary.match(/\b(TERM|INT|QUIT|HUP|USR1|USR2|ALRM|VTALRM|PROF|XCPU|XFSZ|IO|PWR|STKFLT|WINCH)\b/g)!.map((name) => `SIG${name}`))).toEqual(new Set(installed));
});

test("the options the docs say a reload leaves pending a restart are the ones it does", () => {
  const pending = [...RESTART_OPTIONS].filter((key) => key !== "config").map((key) => OPTIONS[key].name).sort();
  const reloading = section("### Reloading (SIGHUP)");
  const inReadme = spans(reloading.slice(reloading.indexOf("except what needs a new listener"), reloading.indexOf("are listed as")));
  expect(inReadme.sort()).toEqual(pending);
  const toml = read("deploy/systemd/sluice.toml");
  const inToml = toml.slice(toml.indexOf("live, except"), toml.indexOf("which need")).replace(/^#/gm, "").match(/[a-z]+(-[a-z]+)*/g)!;
  expect(inToml.filter((word) => !["live", "except", "and"].includes(word)).sort()).toEqual(pending);
  // deploy/systemd/README.md: "Addresses and ports, `ready-path`, ... need `systemctl restart sluice`".
  const unit = read("deploy/systemd/README.md");
  const sentence = unit.slice(unit.indexOf("Addresses and ports"), unit.indexOf("need\n  `systemctl restart"));
  const addresses = ["http-host", "http-port", "admin-listen", "target-host", "target-port"];
  expect([...addresses, ...spans(sentence)].sort()).toEqual(pending);
});

test("the Kubernetes budget the README quotes is the manifest's", () => {
  const deployment = parseYaml(read("deploy/kubernetes/deployment.yaml"));
  const pod = deployment.spec.template.spec;
  const env = Object.fromEntries(pod.containers[0].env.map(({ name, value }: { name: string; value: string }) => [name, value]));
  const config = resolveConfig({}, env, ["app"]);
  const { phases, totalMs } = stopBudget(config);
  const k8s = section("### Kubernetes");
  expect(k8s).toContain(`\`terminationGracePeriodSeconds\` (${pod.terminationGracePeriodSeconds})`);
  const seconds = phases.map(([, ms]) => ms / 1000);
  expect(k8s).toContain(`(${seconds.join(" + ")} = ${totalMs / 1000} s here)`);
  expect(config.gracePeriod).toBe(pod.terminationGracePeriodSeconds * 1000);
});

test("every repository path the docs name exists", () => {
  const missing: string[] = [];
  for (const doc of ["README.md", ...docs(), "deploy/systemd/README.md", "deploy/kubernetes/README.md"]) {
    for (const span of spans(read(doc))) {
      const path = span.split(/\s/)[0]!.replace(/[.,:;)]+$/, "");
      if (!/^(src|tests|deploy|docs|bench|scripts|examples)\/[\w./-]*$/.test(path)) continue;
      if (!existsSync(join(root, path))) missing.push(`${doc}: ${path}`);
    }
  }
  expect(missing).toEqual([]);
});

test("every SLUICE_* variable the docs and deploy files name is one sluice reads", () => {
  const variables = new Set(Object.values(OPTIONS).map((spec) => envName(spec.name)));
  const files = ["README.md", ...docs(), "Dockerfile", ...readdirSync(join(root, "deploy"), { recursive: true, encoding: "utf8" }).map((name) => `deploy/${name}`)];
  const unknown: string[] = [];
  for (const file of files.filter((path) => statSync(join(root, path)).isFile())) {
    for (const [name] of read(file).matchAll(/\bSLUICE_[A-Z0-9_]*[A-Z0-9]\b/g)) if (!variables.has(name)) unknown.push(`${file}: ${name}`);
  }
  expect(unknown).toEqual([]);
});

test("the access record's fields the README lists are the ones it has", () => {
  const logs = section("## Logs");
  const from = logs.indexOf("`access` (one per request: ");
  expect(from).toBeGreaterThanOrEqual(0);
  const text = logs.slice(from, logs.indexOf("`request.failed`", from));
  const always = text.slice(text.indexOf(": ") + 2, text.indexOf(";")).split(",").map((item) => item.trim().split(" ")[0]!);
  const sometimes = spans(text.slice(text.indexOf(";"))).filter((span) => /^[a-z][A-Za-z]+$/.test(span));
  const source = read("src/middleware/access-log.ts");
  const properties = source.slice(source.indexOf("properties: {"), source.indexOf("log.access.emit"));
  // `name: value`, shorthand `name,`, and the optional ones spread in as `{ name: value }`.
  const fields = [...properties.matchAll(/(?:^\s+|\{ )(\w+)[:,]/gm)].map((m) => m[1]!).filter((name) => name !== "event");
  expect([...always, ...sometimes].sort()).toEqual([...new Set(fields)].sort());
});

test("every config.<field> the docs' code names is a field of Config", () => {
  const fields = new Set([...Object.keys(OPTIONS), ...Object.keys(resolveConfig({}, {}, ["app"])), "files"]);
  const unknown: string[] = [];
  for (const doc of ["README.md", ...docs()]) {
    // Inside code blocks only: prose says config.ts, Rails' config.ssl_options and the like.
    for (const [block] of read(doc).matchAll(/```ts\n[\s\S]*?```/g)) {
      for (const [, field] of block.matchAll(/\bconfig\.(\w+)/g)) if (!fields.has(field!)) unknown.push(`${doc}: config.${field}`);
    }
  }
  expect(unknown).toEqual([]);
});

test("the README's exit code table has a row for each code in src/exit-codes.ts and no other, as --help's summary does", () => {
  const rows = section("## Exit codes").split("\n").filter((line) => /^\| \d+ \|/.test(line));
  const codes = Object.values(ExitCode) as number[];
  expect(rows.map((row) => Number(row.split("|")[1]))).toEqual([...codes].sort((a, b) => a - b));
  const summary = helpText().slice(helpText().indexOf("Exit codes:"));
  for (const code of codes) expect(summary).toMatch(new RegExp(`\\b${code} `));
});
