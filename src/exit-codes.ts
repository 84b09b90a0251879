/** @module Every exit code sluice uses, with its meaning (the README's table mirrors this file). */

export const ExitCode = {
  /** Stopped on request (SIGTERM/SIGINT) and every stop step finished within its deadline. */
  OK: 0,
  /** Bad command line: unknown flag, missing value, missing command (sysexits EX_USAGE). */
  USAGE: 64,
  /**
   * The stop was forced: requests were aborted at the drain deadline, the child had to be
   * SIGKILLed, a fast stop cut the waits short, or a stop step failed (sysexits EX_TEMPFAIL).
   */
  STOP_INCOMPLETE: 75,
  /**
   * Invalid configuration or a failed start: bad value, shutdown budget over the grace
   * period, listener could not bind, child could not be spawned or never became ready
   * (sysexits EX_CONFIG).
   */
  STARTUP_FAILED: 78,
} as const;
