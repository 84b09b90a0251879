/** @module StopSteps: runs the stop's steps one by one, timing and logging each; a failure never stops the rest. */

import { log } from "./log.ts";

export class StopSteps {
  /** Each step's duration in milliseconds, in the order they ran. */
  readonly phases: Record<string, number> = {};
  /** True once any step threw. */
  failed = false;
  #onPhase: (name: string, ms: number) => void;

  /** `onPhase` hears each step's duration as the step ends (the admin listener serves until the last). */
  constructor(onPhase: (name: string, ms: number) => void = () => {}) {
    this.#onPhase = onPhase;
  }

  /** Runs `run` as the step `name`; resolves with its result, or undefined when it threw. */
  async run<T>(name: string, run: () => Promise<T> | T): Promise<T | undefined> {
    const startedAt = performance.now();
    try {
      return await run();
    } catch (error) {
      this.failed = true;
      log.lifecycle.error("Stop step {step} failed: {error}", { event: "stop.failed", step: name, error: String(error) });
      return undefined;
    } finally {
      const ms = Math.round(performance.now() - startedAt);
      this.phases[name] = ms;
      this.#onPhase(name, ms);
      log.lifecycle.info("Stop step {step} done in {ms}ms", { event: "stop.phase", step: name, ms });
    }
  }

  get totalMs(): number {
    return Object.values(this.phases).reduce((a, b) => a + b, 0);
  }
}
