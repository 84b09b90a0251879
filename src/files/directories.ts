/**
 * @module Directories files are served from, as real paths (symlinks and ".." resolved,
 * relative paths taken from sluice's working directory), and the containment check made on
 * a file's real path, so that neither a symlink nor ".." leads outside them.
 */

import { ConfigError } from "../config.ts";

/** realpath(3): the canonical absolute path, undefined when it does not exist. */
export type RealPath = (path: string) => string | undefined;

/** The real path of the directory at `path`; throws ConfigError naming `source` when there is none. */
export function realDirectory(path: string, source: string, realPath: RealPath): string {
  // "dir/." resolves only when dir is a directory (a file there gives ENOTDIR).
  const real = realPath(`${path}/.`);
  if (real !== undefined) return real;
  const reason = realPath(path) === undefined ? "no such directory" : "not a directory";
  throw new ConfigError(`Cannot serve files from ${source}: ${reason}; current value is "${path}"`);
}

/** True when the real path `path` is `directory` or lies below it. */
export function isWithin(path: string, directory: string): boolean {
  return directory === "/" || path === directory || path.startsWith(`${directory}/`);
}
