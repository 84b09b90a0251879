/**
 * @module Why a file (the --config file, an error page) could not be read, in the same words on
 * both runtimes: their own messages differ (Bun "ENOTDIR: not a directory, open '...'", Deno
 * "Not a directory (os error 20): readfile '...'") and repeat the path the message already names.
 */

const REASONS: Record<string, string> = {
  ENOENT: "no such file",
  ENOTDIR: "a part of the path is not a directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "it is a directory",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "the path is too long",
};

/** A failed read's error code (ENOENT, ...), which both runtimes set. */
export function readErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** True when a failed read or stat was refused for permissions (EACCES, EPERM): not the same as a missing file. */
export function isPermissionDenied(error: unknown): boolean {
  const code = readErrorCode(error);
  return code === "EACCES" || code === "EPERM";
}

/** The reason for a failed read, from its error code; the runtime's message for any other code. */
export function readErrorReason(error: unknown): string {
  const code = readErrorCode(error);
  return (code === undefined ? undefined : REASONS[code]) ?? (error instanceof Error ? error.message : String(error));
}
