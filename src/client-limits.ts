/**
 * @module Client limits against what the runtime's HTTP server can apply: validateClientLimits
 * refuses what it cannot apply as asked; unappliedClientLimits names what it cannot apply at all.
 */

import { type Config, ConfigError, type OptionKey, optionSource } from "./config.ts";
import { formatDuration } from "./config-values.ts";
import type { HttpServerLimits } from "./runtime/types.ts";

/**
 * Throws ConfigError for a timeout or header limit beyond what `runtime` can honour: a
 * silently different limit would be worse than a refusal to start.
 */
export function validateClientLimits(config: Config, runtime: { name: string; httpLimits: HttpServerLimits }): void {
  const { maxIdleTimeoutMs, fixedHeaderTimeoutMs, maxHeaderBytes, maxHeaderCount } = runtime.httpLimits;
  const on = runtime.name === "bun" ? "the Bun binary" : "Deno";
  if (maxIdleTimeoutMs !== undefined && config.idleTimeout > maxIdleTimeoutMs) {
    refuse(config, "idleTimeout", `${on} allows at most ${formatDuration(maxIdleTimeoutMs)}`, formatDuration(config.idleTimeout));
  }
  if (fixedHeaderTimeoutMs !== undefined && config.headerTimeout !== fixedHeaderTimeoutMs) {
    refuse(config, "headerTimeout", `${on} gives every request's headers a fixed ${formatDuration(fixedHeaderTimeoutMs)}`, formatDuration(config.headerTimeout));
  }
  if (config.maxHeaderSize > maxHeaderBytes) {
    const raise = runtime.name === "bun" ? ` (raise it with BUN_OPTIONS=--max-http-header-size=${config.maxHeaderSize})` : "";
    refuse(config, "maxHeaderSize", `${on} reads request heads up to ${maxHeaderBytes} bytes${raise}`, String(config.maxHeaderSize));
  }
  if (config.maxHeaderCount > maxHeaderCount) {
    refuse(config, "maxHeaderCount", `${on} reads at most ${maxHeaderCount} header lines`, String(config.maxHeaderCount));
  }
}

function refuse(config: Config, key: OptionKey, reason: string, value: string): never {
  throw new ConfigError(`Cannot apply ${optionSource(config, key)} on this runtime: ${reason}; current value is "${value}"`);
}

/**
 * The timeouts set on purpose (not left at their defaults) that the runtime cannot apply at
 * all (Deno), for a warning at start: refusing them would stop a config shared with the binary.
 */
export function unappliedClientLimits(config: Config, runtime: { httpLimits: HttpServerLimits }): string[] {
  if (runtime.httpLimits.connectionTimeouts) return [];
  return (["idleTimeout", "headerTimeout"] as const)
    .filter((key) => config[key] > 0 && config.sources?.[key] !== undefined && !config.sources[key]!.startsWith("the default"))
    .map((key) => config.sources![key]!);
}
