/**
 * @module Kills every process a test started, after each test and when the run ends or is
 * cut short. Preloaded by `bun test --preload ./tests/cleanup.ts` (the npm test script): hooks
 * registered by an imported module would apply only to the first test file importing it.
 */

import { afterAll, afterEach } from "bun:test";

/** Processes (or process groups) started by tests. */
const started = new Set<{ pid: number; group: boolean }>();

/** Registers a process group (or process) for cleanup after the current test. */
export function track(pid: number, group = false): void {
  started.add({ pid, group });
}

function killStarted(): void {
  for (const proc of started) {
    try {
      process.kill(proc.group ? -proc.pid : proc.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  started.clear();
}

afterEach(killStarted);
afterAll(killStarted);
process.on("exit", killStarted);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    killStarted();
    process.exit(130);
  });
}
