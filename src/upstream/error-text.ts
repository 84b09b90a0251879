/**
 * @module upstreamErrorText: why an exchange with the child failed, for the access record's
 * `upstreamError`, in the same words on both runtimes. Their own messages for a socket's
 * failure differ (a refused connection: Bun "Failed to connect", Deno "Connection refused (os
 * error 111)"; a reset: Bun "ECONNRESET: connection reset by peer, read", Deno "Connection
 * reset by peer (os error 104)"), and Bun's names no reason at all; both set the error's code.
 */

import { readErrorCode } from "../read-errors.ts";

const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by peer",
  ECONNABORTED: "connection aborted",
  EPIPE: "broken pipe",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "network is unreachable",
  EADDRNOTAVAIL: "address not available",
  EMFILE: "too many open files",
};

/**
 * The failure's reason (its cause's, when it has one), as "<reason> (<code>)" for a socket
 * error both runtimes report by code; any other error's own message.
 */
export function upstreamErrorText(error: unknown): string {
  const failure = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = readErrorCode(failure);
  const reason = code === undefined ? undefined : REASONS[code];
  if (reason !== undefined) return `${reason} (${code})`;
  return failure instanceof Error ? failure.message : String(failure);
}
