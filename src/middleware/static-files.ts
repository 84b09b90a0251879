/**
 * @module staticFiles: GET and HEAD requests for a regular file inside --public-dir are
 * answered from the disk, even while the child is not ready; anything else (no such file, a
 * directory without index.html, a file sluice may not read, a target that cannot name a file
 * inside) goes on to the app.
 * Rules in docs/static-files.md.
 */

import type { MiddlewareHandler } from "hono";
import { isWithin, type RealPath } from "../files/directories.ts";
import { type FileAccess, fileResponse } from "../files/file-response.ts";
import { isFingerprinted } from "../files/fingerprint.ts";
import { requestedSegments } from "../files/request-path.ts";
import type { ProxyEnv } from "../proxy.ts";

/** Fingerprinted names change with their content: browsers and CDNs may keep them for a year. */
export const IMMUTABLE = "public, max-age=31536000, immutable";

export interface StaticFilesOptions {
  /** The real path of the public directory. */
  root: string;
  files: FileAccess & { realPath: RealPath };
}

/** The response for `request` from a file under `root`, or undefined when none answers it. */
async function fromDirectory(request: Request, { root, files }: StaticFilesOptions): Promise<Response | undefined> {
  const target = requestedSegments(request.url);
  if (target === undefined) return undefined;
  // A directory is never listed; "/docs/" may have its index.html.
  const names = target.directory ? [...target.segments, "index.html"] : target.segments;
  const real = files.realPath(`${root}/${names.join("/")}`);
  if (real === undefined || !isWithin(real, root)) return undefined; // missing, or a symlink leading outside
  // Type and caching follow the name asked for, not a symlink's target (`report.pdf -> blobs/sha256-...`).
  const name = names.at(-1)!;
  const answer = await fileResponse(request, real, files, isFingerprinted(name) ? { cacheControl: IMMUTABLE, typeName: name } : { typeName: name });
  return answer instanceof Response ? answer : undefined; // a directory, or a file sluice may not read
}

export function staticFiles(options: StaticFilesOptions): MiddlewareHandler<ProxyEnv> {
  return async function staticFiles(c, next) {
    const { exchange } = c.env;
    const { method } = exchange.request;
    if (method !== "GET" && method !== "HEAD") return next();
    const response = await fromDirectory(exchange.request, options);
    if (response === undefined) return next();
    response.headers.set("x-request-id", exchange.requestId);
    return response;
  };
}
