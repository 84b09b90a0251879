/**
 * Supervisor.start() with the real Bun runtime, its port probe held at a gate: a stop that
 * comes while a (re)start checks the target port must keep the child from being spawned.
 * Nothing else would stop that child: the stop already ran, and the child has its own
 * process group.
 */

import { afterEach, expect, test } from "bun:test";
import { LineOutput } from "../../src/output.ts";
import { Readiness } from "../../src/readiness.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { Supervisor } from "../../src/supervisor.ts";
import { Metrics } from "../../src/telemetry/metrics.ts";
import { freePort } from "../harness.ts";

let started: number[] = [];
afterEach(() => {
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  started = [];
});

test("a stop during the (re)start's port check: no child is spawned", async () => {
  const probing = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  const runtime: Runtime = {
    ...bunRuntime,
    async probeTcp(hostname, port) {
      probing.resolve();
      await gate.promise;
      return bunRuntime.probeTcp(hostname, port);
    },
    spawn(command, options) {
      const child = bunRuntime.spawn(command, options);
      started.push(child.pid);
      return child;
    },
  };
  const supervisor = new Supervisor(
    {
      command: ["sleep", "600"],
      env: {},
      targetHost: "127.0.0.1",
      targetPort: freePort(),
      readyPath: undefined,
      readyTimeoutMs: 5_000,
      restart: "always",
      restartMaxDelayMs: 1_000,
    },
    {
      runtime,
      upstream: () => Promise.reject(new Error("no ready path here")),
      readiness: new Readiness(),
      metrics: new Metrics(),
      stdout: new LineOutput(runtime, 1),
      stderr: new LineOutput(runtime, 2),
    },
  );
  const starting = supervisor.start();
  await probing.promise;
  const stopped = await supervisor.stop("SIGTERM", 1_000, new AbortController().signal);
  expect(stopped.status).toBeUndefined(); // there was no child to stop
  gate.resolve();
  await starting;
  expect(started).toEqual([]);
  expect(supervisor.pid).toBeUndefined();
});
