/** @module Entry point: picks the runtime adapter, runs the command line, exits with its code. */

import { ProcessSignals } from "./process-signals.ts";
import { loadRuntime } from "./runtime/load.ts";
import { subcommandOf } from "./subcommand.ts";

const runtime = await loadRuntime();
const serving = subcommandOf(runtime.args[0]) === "serve";
// First of all: on Bun this starts the process over once, with its allocator tuned for
// serving; a command that only prints or asks something is done before that would pay.
if (serving) await runtime.tuneProcess();
// Then the handlers, before the rest of sluice loads (imported below): as PID 1 (a container
// without an init) the kernel drops a signal that has no handler instead of acting on it, and
// elsewhere its default action would end sluice at once. Either way a stop sent while sluice
// starts is kept. The start-over held such signals back (blocked): they arrive now.
const signals = serving || runtime.pid === 1 ? new ProcessSignals(runtime).install() : undefined;
runtime.releaseSignals();
const { runCli } = await import("./cli.ts");
runtime.exit(await runCli(runtime, signals));
