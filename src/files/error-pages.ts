/**
 * @module The HTML pages for the 502, 503 and 504 answers sluice makes itself, read once per
 * pipeline: at start, `sluice check` and every reload. A page set explicitly (flag, variable,
 * config file, thruster's BAD_GATEWAY_PAGE) must be readable; a default path is used only when
 * the file is there.
 */

import { type Config, ConfigError, OPTIONS } from "../config.ts";
import { readErrorCode, readErrorReason } from "../read-errors.ts";
import type { FileStat } from "../runtime/types.ts";
import type { RealPath } from "./directories.ts";

/** The statuses that get a page, and the option naming each one's file. */
export const PAGE_OPTIONS = {
  502: "badGatewayPage",
  503: "unavailablePage",
  504: "gatewayTimeoutPage",
} as const;

export type PageStatus = keyof typeof PAGE_OPTIONS;

/** Each status's page (HTML text), for those that have one. */
export type ErrorPages = Partial<Record<PageStatus, string>>;

/** Errors that say a default page is simply not there (anything else is worth a failure). */
const ABSENT = new Set(["ENOENT", "ENOTDIR"]);

/** What reading the pages needs from the disk (the runtime gives it). */
export interface PageDisk {
  readTextFile(path: string): Promise<string>;
  statFile(path: string): Promise<FileStat | undefined>;
  realPath: RealPath;
}

/** Reads the pages; throws ConfigError naming the option and the path of one that cannot be read. */
export async function loadErrorPages(config: Config, disk: PageDisk): Promise<ErrorPages> {
  const pages: ErrorPages = {};
  for (const [status, key] of Object.entries(PAGE_OPTIONS)) {
    const path = config[key];
    const source = config.sources?.[key] ?? `the default of --${OPTIONS[key].name}`;
    // A pipe or a device would be read again by every reload: with no writer left the read
    // waits for ever, and no reload after it runs (/dev/zero fills the memory).
    if ((await disk.statFile(path)) === undefined && isSpecialFile(path, disk.realPath)) {
      throw new ConfigError(`Cannot read the error page ${path} (${source}): not a regular file (a pipe or a device, which every reload would read again)`);
    }
    try {
      pages[Number(status) as PageStatus] = await disk.readTextFile(path);
    } catch (error) {
      if (source.startsWith("the default of ") && ABSENT.has(readErrorCode(error) ?? "")) continue;
      throw new ConfigError(`Cannot read the error page ${path} (${source}): ${readErrorReason(error)}`, { cause: error });
    }
  }
  return pages;
}

/** True when `path` exists and is neither a regular file (statFile said so) nor a directory. */
function isSpecialFile(path: string, realPath: RealPath): boolean {
  // "dir/." resolves only when dir is a directory.
  return realPath(path) !== undefined && realPath(`${path}/.`) === undefined;
}
