/** @module Entry point: picks the runtime adapter, runs the command line, exits with its code. */

import { runCli } from "./cli.ts";
import { loadRuntime } from "./runtime/load.ts";

const runtime = await loadRuntime();
runtime.exit(await runCli(runtime));
