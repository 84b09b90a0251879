/**
 * @module What the file features need from the disk before a pipeline is built: the real
 * paths of --x-sendfile-dirs and --public-dir, and the error pages. Done at start, by
 * `sluice check` and on every reload (a reload applies changes, or fails and keeps the old).
 */

import type { Config } from "../config.ts";
import { realDirectory, type RealPath } from "./directories.ts";
import { type ErrorPages, loadErrorPages } from "./error-pages.ts";

export interface PreparedFiles {
  /** Real paths of --x-sendfile-dirs (none when X-Sendfile is off). */
  sendfileDirs: string[];
  /** Real path of --public-dir, when it is set. */
  publicDir: string | undefined;
  pages: ErrorPages;
}

export interface DiskAccess {
  realPath: RealPath;
  readTextFile(path: string): Promise<string>;
}

/** Resolves and reads what `config` names; throws ConfigError naming the option at fault. */
export async function prepareFiles(config: Config, disk: DiskAccess): Promise<PreparedFiles> {
  const sources = config.sources ?? {};
  const sendfileDirs = config.xSendfile
    ? config.xSendfileDirs.map((dir) => realDirectory(dir, sources.xSendfileDirs ?? "--x-sendfile-dirs", disk.realPath))
    : [];
  const publicDir = config.publicDir === undefined
    ? undefined
    : realDirectory(config.publicDir, sources.publicDir ?? "--public-dir", disk.realPath);
  return { sendfileDirs, publicDir, pages: await loadErrorPages(config, disk.readTextFile) };
}
