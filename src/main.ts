/** @module Entry point: picks the runtime adapter, runs the command line, exits with its code. */

import { ProcessSignals } from "./process-signals.ts";
import { loadRuntime } from "./runtime/load.ts";
import { subcommandOf } from "./subcommand.ts";

const runtime = await loadRuntime();
// First of all: on Bun this starts the process over once, with its allocator tuned for
// serving; a command that only prints or asks something is done before that would pay.
if (subcommandOf(runtime.args[0]) === "serve") await runtime.tuneProcess();
// As PID 1 (a container without an init) the kernel drops a signal that has no handler
// instead of acting on it: a stop sent while sluice starts would be lost, and the container
// killed at its grace period. So the handlers come first, before the rest of sluice loads
// (imported below). Elsewhere the default action ends a sluice that has started nothing.
const signals = runtime.pid === 1 ? new ProcessSignals(runtime).install() : undefined;
const { runCli } = await import("./cli.ts");
runtime.exit(await runCli(runtime, signals));
