/** @module Prints the README's option tables (all options; thruster's variables) from the table the parser uses. */

import { envName, OPTIONS } from "../src/config.ts";

export function optionsTable(): string {
  const rows = Object.values(OPTIONS).map((spec) => {
    const def = spec.defaultText === undefined ? "unset" : spec.defaultText === "" ? "empty" : `\`${spec.defaultText}\``;
    return `| \`--${spec.name} ${spec.placeholder.replaceAll("|", "\\|")}\` | \`${envName(spec.name)}\` | ${def} | ${spec.help} |`;
  });
  return ["| Flag | Variable | Default | Meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

/** thruster's variables and the sluice options they set. */
export function thrusterTable(): string {
  const rows = Object.values(OPTIONS).flatMap((spec) => {
    const variable = "thruster" in spec ? spec.thruster : undefined;
    return variable ? [`| \`${variable.name}\`, \`THRUSTER_${variable.name}\` | \`--${spec.name}\` |`] : [];
  });
  return ["| thruster variable | sluice option |", "| --- | --- |", ...rows].join("\n");
}

if (import.meta.main) console.log(`${optionsTable()}\n\n${thrusterTable()}`);
