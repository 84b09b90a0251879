/**
 * @module subcommandOf: which of sluice's commands a command line asks for. Kept apart from
 * cli.ts so that main.ts can tell before loading the rest of sluice whether this process will
 * serve (only then is the allocator's start-over worth its 40 ms: `sluice healthcheck` runs
 * as often as a Docker HEALTHCHECK or a Kubernetes exec probe asks).
 */

/** `serve` is the default: `sluice [options] [--] <command> [args...]`. */
export type Subcommand = "version" | "help" | "healthcheck" | "check" | "serve";

/** The subcommand named by the first argument of a command line. */
export function subcommandOf(first: string | undefined): Subcommand {
  switch (first) {
    case "version":
    case "--version":
      return "version";
    case "help":
    case "--help":
    case "-h":
      return "help";
    case "healthcheck":
    case "check":
      return first;
    default:
      return "serve";
  }
}
