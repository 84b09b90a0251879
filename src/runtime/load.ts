/** @module Picks the runtime adapter once, at the entry point. */

import type { Runtime } from "./types.ts";

// A computed specifier keeps the Deno adapter out of the Bun bundle and out of the
// Bun-typed check (`deno check src/runtime/deno.ts` covers it).
const DENO_ADAPTER = "./deno.ts";

export async function loadRuntime(): Promise<Runtime> {
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunRuntime;
  if ("Deno" in globalThis) return ((await import(DENO_ADAPTER)) as { denoRuntime: Runtime }).denoRuntime;
  throw new Error("Cannot run sluice here: it needs Bun or Deno");
}
