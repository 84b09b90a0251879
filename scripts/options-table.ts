/** @module Prints the README's option table from the same table the parser uses. */

import { envName, OPTIONS } from "../src/config.ts";

export function optionsTable(): string {
  const rows = Object.values(OPTIONS).map((spec) => {
    const def = spec.defaultText === undefined ? "unset" : spec.defaultText === "" ? "empty" : `\`${spec.defaultText}\``;
    return `| \`--${spec.name} ${spec.placeholder.replaceAll("|", "\\|")}\` | \`${envName(spec.name)}\` | ${def} | ${spec.help} |`;
  });
  return ["| Flag | Variable | Default | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

if (import.meta.main) console.log(optionsTable());
