/**
 * @module The HTML pages for the 502, 503 and 504 answers sluice makes itself, read once per
 * pipeline: at start, `sluice check` and every reload. A page set explicitly (flag, variable,
 * config file, thruster's BAD_GATEWAY_PAGE) must be readable; a default path is used only when
 * the file is there.
 */

import { type Config, ConfigError, OPTIONS } from "../config.ts";
import { readErrorReason } from "../read-errors.ts";

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

/** Reads the pages; throws ConfigError naming the option and the path of one that cannot be read. */
export async function loadErrorPages(config: Config, readTextFile: (path: string) => Promise<string>): Promise<ErrorPages> {
  const pages: ErrorPages = {};
  for (const [status, key] of Object.entries(PAGE_OPTIONS)) {
    const path = config[key];
    const source = config.sources?.[key] ?? `the default of --${OPTIONS[key].name}`;
    try {
      pages[Number(status) as PageStatus] = await readTextFile(path);
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (source.startsWith("the default of ") && typeof code === "string" && ABSENT.has(code)) continue;
      throw new ConfigError(`Cannot read the error page ${path} (${source}): ${readErrorReason(error)}`, { cause: error });
    }
  }
  return pages;
}
