/** @module The version, the git commit it was built from, and the runtime. */

import pkg from "../package.json" with { type: "json" };
import type { Runtime } from "./runtime/types.ts";

// Replaced by `bun build --define` in compile.sh; absent when running from source.
declare const SLUICE_COMMIT: string | undefined;

export const VERSION: string = pkg.version;

export function versionLine(runtime: Runtime): string {
  const commit = typeof SLUICE_COMMIT === "string" ? SLUICE_COMMIT : (runtime.sourceCommit() ?? "unknown");
  return `sluice ${VERSION} (commit ${commit}, ${runtime.name} ${runtime.version})`;
}
