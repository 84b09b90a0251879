/** @module validateClientLimits: refuses client limits the runtime's HTTP server cannot apply as asked. */

import { type Config, ConfigError, type OptionKey, OPTIONS } from "./config.ts";
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
  const source = config.sources?.[key] ?? `--${OPTIONS[key].name}`;
  throw new ConfigError(`Cannot apply ${source} on this runtime: ${reason}; current value is "${value}"`);
}
