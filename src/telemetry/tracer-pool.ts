/**
 * @module The reference-counted tracer provider pool: pipelines share one provider per
 * exporter key across reloads; it is built only when none can be reused and flushed and
 * shut down when the last lease on it is released (caddy's tracing/tracerprovider.go, and
 * the leak its PR #7826 fixed: a provider built and thrown away on every reload).
 */

import { log } from "../log.ts";

/** What the pool needs of a provider (tracer-provider.ts's TracerProvider has both). */
export interface PooledProvider {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Misuse and failures the pool reports instead of throwing. */
export type PoolProblem =
  | { event: "tracer.release.repeated" }
  | { event: "tracer.flush.failed" | "tracer.shutdown.failed"; error: unknown };

export interface TracerPoolOptions {
  /** Receives each problem. @default a warning or error record on the lifecycle logger */
  report?: (problem: PoolProblem) => void;
}

/** What one acquire() took: release it exactly once. */
export interface TracerLease<T> {
  readonly provider: T;
}

interface Entry<T> {
  readonly key: string;
  readonly provider: T;
  leases: number;
}

export class TracerPool<T extends PooledProvider> {
  readonly #byKey = new Map<string, Entry<T>>();
  /** Leases not yet released: a token absent from here was released already (or is foreign). */
  readonly #leases = new Map<TracerLease<T>, Entry<T>>();
  /** Providers released to zero and still flushing or shutting down, by that work. */
  readonly #closing = new Map<Promise<void>, T>();
  readonly #report: (problem: PoolProblem) => void;
  #built = 0;

  constructor({ report = logProblem }: TracerPoolOptions = {}) {
    this.#report = report;
  }

  /** Providers built since the pool was made (sluice_tracer_providers_built_total). */
  get built(): number {
    return this.#built;
  }

  /** Providers in use or still shutting down (sluice_tracer_providers_active). */
  get active(): number {
    return this.#byKey.size + this.#closing.size;
  }

  /** Leases held on the provider for `key`. */
  references(key: string): number {
    return this.#byKey.get(key)?.leases ?? 0;
  }

  /**
   * Takes a lease on the provider for `key`, calling `build` only when there is none. If
   * `build` throws, the pool is unchanged and the error propagates. Synchronous on purpose:
   * two acquires for one key cannot both build.
   */
  acquire(key: string, build: () => T): TracerLease<T> {
    let entry = this.#byKey.get(key);
    if (entry === undefined) {
      const provider = build();
      this.#built++;
      entry = { key, provider, leases: 0 };
      this.#byKey.set(key, entry);
    }
    entry.leases++;
    const lease: TracerLease<T> = Object.freeze({ provider: entry.provider });
    this.#leases.set(lease, entry);
    return lease;
  }

  /**
   * Gives back what `lease` took. At zero the provider leaves the pool at once (a later
   * acquire builds a new one) and is flushed, then shut down; the promise resolves when it
   * is, and never rejects: failures go to `report`. Releasing a lease twice does nothing
   * and is reported.
   */
  release(lease: TracerLease<T>): Promise<void> {
    const entry = this.#leases.get(lease);
    if (entry === undefined) {
      this.#report({ event: "tracer.release.repeated" });
      return Promise.resolve();
    }
    this.#leases.delete(lease);
    if (--entry.leases > 0) return Promise.resolve();
    this.#byKey.delete(entry.key);
    const closing: Promise<void> = this.#close(entry.provider).finally(() => this.#closing.delete(closing));
    this.#closing.set(closing, entry.provider);
    return closing;
  }

  /** Resolves when every provider released to zero so far has finished shutting down. */
  async settled(): Promise<void> {
    while (this.#closing.size > 0) await Promise.all(this.#closing.keys());
  }

  /** Every provider in use or still shutting down (what a flush that was cut short left behind). */
  providers(): T[] {
    return [...[...this.#byKey.values()].map((entry) => entry.provider), ...this.#closing.values()];
  }

  async #close(provider: T): Promise<void> {
    // Flushed first so a failing flush is told apart from a failing shutdown; the
    // shutdown still runs (it stops the processor and the exporter).
    try {
      await provider.forceFlush();
    } catch (error) {
      this.#report({ event: "tracer.flush.failed", error });
    }
    try {
      await provider.shutdown();
    } catch (error) {
      this.#report({ event: "tracer.shutdown.failed", error });
    }
  }
}

function logProblem(problem: PoolProblem): void {
  if (problem.event === "tracer.release.repeated") {
    log.lifecycle.warn("A tracer provider lease was released twice; the second release was ignored", { event: problem.event });
  } else {
    const step = problem.event === "tracer.flush.failed" ? "flush" : "shutdown";
    log.lifecycle.error("Tracer provider {step} failed: {error}", { event: problem.event, step, error: String(problem.error) });
  }
}
