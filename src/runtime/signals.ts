/**
 * @module Linux signal numbers, for exit codes of children killed by a signal (128+n), and
 * the signals sluice ignores.
 */

const LINUX_SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22,
  SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29,
  SIGPWR: 30, SIGSYS: 31,
};

/** The number of a signal given by name; 0 when unknown. */
export function signalNumber(name: string): number {
  return LINUX_SIGNALS[name] ?? 0;
}

/**
 * Signals that end a process by default and that sluice has no use for: one sent by mistake
 * would end it at once, with requests in flight and its child left running.
 */
export const IGNORED_SIGNALS = ["SIGUSR1", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGXFSZ", "SIGIO", "SIGPWR", "SIGSTKFLT"] as const;
export type IgnoredSignal = typeof IGNORED_SIGNALS[number];
