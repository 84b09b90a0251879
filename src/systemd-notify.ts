/**
 * @module SystemdNotifier: tells systemd about the lifecycle over NOTIFY_SOCKET (sd_notify),
 * and pings its watchdog. Does nothing at all when sluice does not run under a notify unit.
 * https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
 */

import type { Runtime } from "./runtime/types.ts";

export class SystemdNotifier {
  #runtime: Runtime;
  #socket: string | undefined;
  #watchdogMs: number | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** What sluice serves on, for STATUS=; undefined until sluice was first ready. */
  #serving: string | undefined;
  /** The last STATUS=, repeated with READY=1 after a reload. */
  #status: string | undefined;
  /** After STOPPING=1 nothing says READY=1 again (a reload that ends during the stop). */
  #stopping = false;

  constructor(runtime: Runtime, env: Record<string, string | undefined>) {
    this.#runtime = runtime;
    this.#socket = env.NOTIFY_SOCKET || undefined;
    const usec = Number(env.WATCHDOG_USEC);
    this.#watchdogMs = this.#socket && usec > 0 ? usec / 1000 : undefined;
  }

  /** The child is ready and sluice serves (`serving`: where): systemd may consider the unit started. */
  ready(serving: string): void {
    if (this.#stopping) return;
    this.#serving = this.#status = serving;
    this.#send(`READY=1\nSTATUS=${serving}`);
    // Half the watchdog interval, as sd_watchdog_enabled(3) advises.
    if (this.#watchdogMs !== undefined && this.#watchdog === undefined) {
      this.#watchdog = setInterval(() => this.#send("WATCHDOG=1"), this.#watchdogMs / 2);
    }
  }

  /**
   * What sluice is doing besides serving (a rolling restart, how the last one went), for
   * `systemctl status`: a deploy that sent SIGUSR2 can see there how it goes.
   */
  detail(text: string): void {
    if (this.#stopping || this.#serving === undefined) return;
    // One line: a newline would end the assignment and start another.
    this.#status = `${this.#serving}; ${text.replaceAll("\n", " ")}`;
    this.#send(`STATUS=${this.#status}`);
  }

  /** A reload has begun; `reloaded()` must follow it (Type=notify-reload waits for READY=1). */
  reloading(): void {
    if (this.#status === undefined) return; // a SIGHUP during the start: systemd waits for READY anyway
    const now = this.#runtime.monotonicMicros();
    this.#send(`RELOADING=1\nSTATUS=reloading${now === undefined ? "" : `\nMONOTONIC_USEC=${now}`}`);
  }

  /** The stop has begun; `budgetMs` more may be needed (extends TimeoutStopSec for long drains). */
  stopping(budgetMs: number): void {
    this.#stopping = true;
    this.#send(`STOPPING=1\nSTATUS=stopping\nEXTEND_TIMEOUT_USEC=${Math.ceil(budgetMs * 1000)}`);
  }

  /** The reload is over (done or refused): serving again. */
  reloaded(): void {
    if (this.#status !== undefined && !this.#stopping) this.#send(`READY=1\nSTATUS=${this.#status}`);
  }

  /** Stops the watchdog pings (last step of the stop: nothing may keep the process alive). */
  close(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  #send(message: string): void {
    if (this.#socket !== undefined) this.#runtime.notify(this.#socket, message);
  }
}
