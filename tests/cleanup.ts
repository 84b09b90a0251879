/**
 * @module Kills every process a test started, after each test and when the run ends or is
 * cut short. Preloaded by `bun test --preload ./tests/cleanup.ts` (the npm test script): hooks
 * registered by an imported module would apply only to the first test file importing it.
 */

import { afterAll, afterEach } from "bun:test";

type Started = Set<{ pid: number; group: boolean }>;
/** Processes (or process groups) started by tests, killed after each test. */
const started: Started = new Set();
/** Services a whole test file shares (a container engine), killed when the run ends. */
const services: Started = new Set();

/** Registers a process group (or process) for cleanup after the current test. */
export function track(pid: number, group = false): void {
  started.add({ pid, group });
}

/** Registers a process (group) that outlives single tests; its file should stop it in afterAll. */
export function trackUntilEnd(pid: number, group = false): void {
  services.add({ pid, group });
}

function kill(procs: Started): void {
  for (const proc of procs) {
    try {
      process.kill(proc.group ? -proc.pid : proc.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  procs.clear();
}

const killAll = () => (kill(started), kill(services));
afterEach(() => kill(started));
afterAll(killAll);
process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}
