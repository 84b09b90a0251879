/** @module The fuzzers' command line: `--name value` options with defaults, and bare `--flag`s. */

export const argv = process.argv.slice(2);

/** The value after `--name`, or `def` when it is not given. */
export function arg(name: string, def: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
}
