/**
 * @module What the file features need from the disk before a pipeline is built: the real
 * paths of --x-sendfile-dirs and --public-dir, and the error pages. Done at start, by
 * `sluice check` and on every reload (a reload applies changes, or fails and keeps the old).
 */

import { type Config, ConfigError, type OptionKey, optionSource } from "../config.ts";
import { isPermissionDenied } from "../read-errors.ts";
import { realDirectory } from "./directories.ts";
import { type ErrorPages, loadErrorPages, PAGE_OPTIONS, type PageDisk, type PageStatus } from "./error-pages.ts";

export interface PreparedFiles {
  /** Real paths of --x-sendfile-dirs (none when X-Sendfile is off). */
  sendfileDirs: string[];
  /** Real path of --public-dir, when it is set. */
  publicDir: string | undefined;
  pages: ErrorPages;
}

/** What preparing the files needs from the disk: the error pages need the most (the directories only realPath). */
export type DiskAccess = PageDisk;

/** Resolves and reads what `config` names; throws ConfigError naming the option at fault. */
export async function prepareFiles(config: Config, disk: DiskAccess): Promise<PreparedFiles> {
  const sendfileDirs: string[] = [];
  if (config.xSendfile) for (const dir of config.xSendfileDirs) sendfileDirs.push(await servedDirectory(dir, optionSource(config, "xSendfileDirs"), disk));
  const publicDir = config.publicDir === undefined ? undefined : await servedDirectory(config.publicDir, optionSource(config, "publicDir"), disk);
  return { sendfileDirs, publicDir, pages: await loadErrorPages(config, disk) };
}

/** A name no directory holds: opening it says whether files in the directory can be opened at all. */
const PROBE_NAME = ".sluice-permission-probe";

/**
 * The real path of a directory files are served from. One this user cannot search (a
 * directory of mode 700 owned by another user, or one on its path) is refused: it resolved
 * (or read as "no such directory"), and then every file in it went to the app, its 404 or
 * worse, without a word.
 */
async function servedDirectory(path: string, source: string, disk: DiskAccess): Promise<string> {
  try {
    await disk.readTextFile(`${path}/${PROBE_NAME}`);
  } catch (error) {
    // Not the default (--x-sendfile-dirs .): an app that sends no file must not fail to start for it.
    if (isPermissionDenied(error) && !source.startsWith("the default of ")) {
      throw new ConfigError(`Cannot serve files from ${source}: permission denied (this user cannot open files in it); current value is "${path}"`);
    }
  }
  return realDirectory(path, source, disk.realPath);
}

/**
 * The options whose files changed between two prepared configurations, whatever their values:
 * a directory whose real path moved (a `current` symlink turned to a new release) or a page
 * whose text changed. A reload reports them, and they change what the response cache holds.
 */
export function changedFiles(before: Config, after: Config): OptionKey[] {
  const was = before.files;
  const now = after.files;
  if (was === undefined || now === undefined) return [];
  const changed: OptionKey[] = [];
  // Resolved only while X-Sendfile is on: turning it on or off is a change of x-sendfile alone.
  if (before.xSendfile && after.xSendfile && was.sendfileDirs.join("\0") !== now.sendfileDirs.join("\0")) changed.push("xSendfileDirs");
  if (was.publicDir !== now.publicDir) changed.push("publicDir");
  for (const [status, key] of Object.entries(PAGE_OPTIONS)) {
    if (was.pages[Number(status) as PageStatus] !== now.pages[Number(status) as PageStatus]) changed.push(key);
  }
  return changed;
}
