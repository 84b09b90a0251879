/**
 * @module A request answered from a file, as a web server would: Content-Type from the
 * name, Content-Length, Last-Modified and a strong ETag from size and modification time (ms),
 * the preconditions of RFC 9110 section 13.2.2 in its order (412 for a failed If-Match /
 * If-Unmodified-Since, 304 for a matching If-None-Match / If-Modified-Since), 206 for one
 * satisfiable Range (honouring If-Range), 416 for an unsatisfiable one. Shared by X-Sendfile
 * and static files.
 */

import { getMimeType } from "hono/utils/mime";
import type { FileStat, NoFile, OpenFile } from "../runtime/types.ts";
import { parseHttpDate } from "../http-date.ts";
import { parseRange } from "./byte-range.ts";

export type { NoFile };

/** What serving a file needs from the runtime. */
export interface FileAccess {
  openFile(path: string): Promise<OpenFile | NoFile>;
}

export interface FileResponseOptions {
  /**
   * Cache-Control for the file's 200, 206 and 304 (none when undefined). A 412 or 416 answers
   * the request's own If-Match or Range, which a cache's key (the URL) does not hold: marked
   * cacheable (a fingerprinted file's year, immutable) it could be kept and served to every
   * later request for the file, so it gets none (nginx's `expires` neither).
   */
  cacheControl?: string;
  /**
   * The name the Content-Type is guessed from: the one the request or the app named, which a
   * symlink's target need not share (`report.pdf -> blobs/sha256-...`); `path` when undefined.
   */
  typeName?: string;
}

const fileBodies = new WeakSet<Response>();

/**
 * Marks `response` as carrying a file's bytes the way the runtime sends them itself (Bun: a
 * Blob, sent with sendfile(2)); returns it. The server passes such a body through unobserved:
 * a JS stream around it would cost sendfile, and on Bun its Content-Length too.
 */
export function markFileBody(response: Response): Response {
  if (response.body !== null) fileBodies.add(response);
  return response;
}

/** True for a response marked by markFileBody. */
export function hasFileBody(response: Response): boolean {
  return fileBodies.has(response);
}

/** HTTP dates have whole seconds: compare and print modification times that way. */
const wholeSeconds = (ms: number) => Math.floor(ms / 1000) * 1000;

/**
 * A strong tag must change whenever the bytes do (RFC 9110 section 8.8.1): the modification
 * time goes in to the millisecond (both runtimes give that much), not to the second of
 * Last-Modified, so that a file replaced by one of the same size within the same second gets
 * a new tag, and a download resumed with If-Range gets the new file whole, not the old one's
 * head spliced to the new one's tail.
 */
function entityTag({ size, modifiedMs }: FileStat): string {
  return `"${Math.floor(modifiedMs).toString(16)}-${size.toString(16)}"`;
}

/** If-None-Match: "*" or a list of tags; compared weakly (W/ ignored), as RFC 9110 §13.1.2 says. */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === etag);
}

/** If-Match: "*" or a list of tags; compared strongly (a weak tag never matches), RFC 9110 §13.1.1. */
function anyMatch(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  return header.split(",").some((tag) => tag.trim() === etag);
}

/** True when a date header says the file has not changed since then; false when absent or not an HTTP-date. */
function notModifiedSince(header: string | null, modifiedMs: number): boolean {
  if (header === null) return false;
  const since = parseHttpDate(header);
  return since !== undefined && wholeSeconds(modifiedMs) <= since;
}

/** If-Match, else If-Unmodified-Since (a value that is no HTTP-date is ignored): false means 412. */
function preconditionHolds(headers: Headers, etag: string, modifiedMs: number): boolean {
  const ifMatch = headers.get("if-match");
  if (ifMatch !== null) return anyMatch(ifMatch, etag);
  const since = headers.get("if-unmodified-since");
  return since === null || parseHttpDate(since) === undefined || notModifiedSince(since, modifiedMs);
}

/** If-Range: the range applies only if the file is still the one the client has (strong comparison). */
function rangeStillValid(header: string | null, etag: string, modifiedMs: number): boolean {
  if (header === null) return true;
  const value = header.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return value === etag;
  return parseHttpDate(value) === wholeSeconds(modifiedMs);
}

/**
 * The response for `request` from the file at `path`, or why there is none. The file is
 * opened first (on Bun: checked readable, see Runtime.openFile), so that a refusal is known
 * before a status is chosen and the validators describe the bytes sent. `path` must already
 * be checked against the allowed directories. Preconditions apply to GET and HEAD only, Range
 * to GET only (RFC 9110 section 14.2: a HEAD's answer is the 200 its GET without Range would
 * have): for another method (a POST the app answered with X-Sendfile) the app has already
 * acted, so the whole file is sent.
 */
export async function fileResponse(
  request: Request,
  path: string,
  files: FileAccess,
  options: FileResponseOptions = {},
): Promise<Response | NoFile> {
  const file = await files.openFile(path);
  if (typeof file === "string") return file;
  let response: Response | undefined;
  try {
    return (response = answerFrom(file, request, path, options));
  } finally {
    // A response with the file's bytes owns the file now; any other never took it.
    if (response === undefined || !hasFileBody(response)) file.close();
  }
}

/** The response `fileResponse` makes from the open `file`: only a 200 or 206 with a body takes its bytes. */
function answerFrom(file: OpenFile, request: Request, path: string, options: FileResponseOptions): Response {
  const stat: FileStat = file;
  const etag = entityTag(stat);
  // Never later than now (RFC 9110 section 8.8.2.1): a modification time in the future (a
  // build machine's clock ahead, a `touch -d`) is replaced by the time of the answer, or a
  // client revalidating with it would keep its copy through every change dated before it.
  const modifiedMs = Math.min(stat.modifiedMs, Date.now());
  const headers = new Headers({
    "accept-ranges": "bytes",
    etag,
    "last-modified": new Date(wholeSeconds(modifiedMs)).toUTCString(),
  });

  const head = request.method === "HEAD";
  const conditional = head || request.method === "GET";
  if (conditional && !preconditionHolds(request.headers, etag, modifiedMs)) return new Response(null, { status: 412, headers });
  if (options.cacheControl) headers.set("cache-control", options.cacheControl);
  const ifNoneMatch = request.headers.get("if-none-match");
  const unchanged = conditional && (ifNoneMatch !== null
    ? noneMatch(ifNoneMatch, etag)
    : notModifiedSince(request.headers.get("if-modified-since"), modifiedMs));
  headers.set("content-type", getMimeType(options.typeName ?? path) ?? "application/octet-stream");
  // The 200's type and length: compression then gives a 304 the ETag and Vary of the 200
  // it stands for (RFC 9110 section 15.4.5), and drops the length if the 200 had none.
  if (unchanged) {
    headers.set("content-length", String(stat.size));
    return new Response(null, { status: 304, headers });
  }

  // Range is defined for GET alone (RFC 9110 section 14.2): a HEAD gets the headers of the
  // GET without it, the whole file's 200, not a 206 describing bytes it would not send.
  const range = request.method === "GET" && rangeStillValid(request.headers.get("if-range"), etag, modifiedMs)
    ? parseRange(request.headers.get("range"), stat.size)
    : "full";
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${stat.size}`);
    headers.delete("content-type");
    headers.delete("cache-control");
    return new Response(null, { status: 416, headers });
  }
  const { start, end } = range === "full" ? { start: 0, end: stat.size - 1 } : range;
  headers.set("content-length", String(end - start + 1));
  if (range !== "full") headers.set("content-range", `bytes ${start}-${end}/${stat.size}`);
  const init = { status: range === "full" ? 200 : 206, headers };
  if (head || stat.size === 0) return new Response(null, init);
  return markFileBody(file.response(start, end, init));
}
