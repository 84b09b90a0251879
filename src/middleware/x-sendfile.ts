/**
 * @module xSendfile: the app names a file in an `X-Sendfile` response header and sluice sends
 * that file itself (with Content-Length, Content-Type, validators, preconditions and Range),
 * only from the directories --x-sendfile-dirs allows. The app learns that sluice does this
 * from the `X-Sendfile-Type: X-Sendfile` request header (Rack::Sendfile's convention, as
 * thruster). Rules in docs/x-sendfile.md.
 */

import { getLogger } from "@logtape/logtape";
import type { Context, MiddlewareHandler } from "hono";
import { isWithin, type RealPath } from "../files/directories.ts";
import { type FileAccess, fileResponse } from "../files/file-response.ts";
import type { Exchange } from "../exchange.ts";
import type { ProxyEnv } from "../proxy.ts";
import { removeField, setField } from "../forwarded-headers.ts";
import { plainText } from "../generated-errors.ts";
import type { HeaderFields } from "../upstream/http1-client.ts";

const fileLog = getLogger(["sluice", "files"]);

export interface XSendfileOptions {
  /** Real paths of the directories files may be sent from. */
  directories: readonly string[];
  files: FileAccess & { realPath: RealPath };
}

/**
 * The proxy's rule for the X-Sendfile-Type request header: a client's own is never passed on
 * (it would make the app hand out paths to a proxy that serves nothing); ours is set when on.
 */
export function sendfileRequestHeader(enabled: boolean): (fields: HeaderFields) => void {
  return enabled
    ? function offerSendfile(fields) {
      setField(fields, "x-sendfile-type", "X-Sendfile");
    }
    : function withholdSendfile(fields) {
      removeField(fields, "x-sendfile-type");
    };
}

/** Headers that describe the file, not the app's (empty) body: the file's own win. */
const FILE_HEADERS = new Set(["x-sendfile", "content-length", "content-range", "accept-ranges", "etag", "last-modified"]);

/**
 * The app's header value as the path it meant: header values arrive as one character per
 * byte, so a UTF-8 path ("café.pdf") is decoded back from its bytes.
 */
function headerPath(value: string): string {
  // Only the blanks HTTP strips (RFC 9110 section 5.5): trim() would also take a final 0xA0
  // byte, the last of a UTF-8 "à" (C3 A0), "Р" (D0 A0) or "Š" (C5 A0).
  const path = value.replace(/^[\t ]+|[\t ]+$/g, "");
  if (/^[\x20-\x7e]*$/.test(path) || /[\u0100-\u{10FFFF}]/u.test(path)) return path; // plain ASCII, or already decoded
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(path, (ch) => ch.charCodeAt(0)));
  } catch {
    return path; // not UTF-8: taken as it came
  }
}

/** A plain answer for a file that is not sent; the path stays in the log, never in the response. */
function refused(status: 403 | 404, exchange: Exchange): Response {
  const text = status === 403 ? "Forbidden\n" : "Not Found\n";
  return plainText(text, status, new Headers({ "x-request-id": exchange.requestId }));
}

/**
 * The file's response with the app's other headers (Cache-Control, Content-Disposition,
 * Set-Cookie ...) added, in place: a copy would read the body, and on Bun lose sendfile.
 */
function withAppHeaders(file: Response, app: Headers): Response {
  const { headers } = file;
  for (const [name, value] of app) {
    if (FILE_HEADERS.has(name)) continue;
    // The app's Content-Type beats the one guessed from the name, when the answer has a body type.
    if (name === "content-type") {
      if (headers.has(name)) headers.set(name, value);
    } else headers.append(name, value);
  }
  return file;
}

/**
 * Why a path has no real path: missing, or behind a directory sluice may not search (which
 * realpath(3) cannot resolve either); the stat of opening it tells the two apart. Nothing is
 * sent from it: its containment was never checked.
 */
async function unresolved(path: string, files: FileAccess): Promise<"no such file" | "permission denied"> {
  const opened = await files.openFile(path);
  if (typeof opened !== "string") opened.close();
  return opened === "permission denied" ? "permission denied" : "no such file";
}

async function sendFile(exchange: Exchange, app: Response, named: string, { directories, files }: XSendfileOptions): Promise<Response> {
  app.body?.cancel().catch(() => {}); // the app's body, if any, is not sent
  const path = headerPath(named);
  const real = files.realPath(path);
  const allowed = real !== undefined && directories.some((directory) => isWithin(real, directory));
  // The type is guessed from the name the app gave, not a symlink's target's.
  const file = allowed ? await fileResponse(exchange.request, real, files, { typeName: path }) : undefined;
  if (file instanceof Response) return withAppHeaders(file, app.headers);
  const reason = real === undefined ? await unresolved(path, files) : file ?? "outside the allowed directories";
  fileLog.warn("X-Sendfile refused {path}: {reason}", {
    event: "x-sendfile.refused",
    path,
    reason,
    allowedDirectories: directories,
    requestId: exchange.requestId,
  });
  return refused(reason === "outside the allowed directories" || reason === "permission denied" ? 403 : 404, exchange);
}

export function xSendfile(options: XSendfileOptions): MiddlewareHandler<ProxyEnv> {
  const answer = (c: Context<ProxyEnv>, response: Response): Response | Promise<Response> => {
    const named = response.headers.get("x-sendfile");
    return named === null ? response : sendFile(c.env.exchange, response, named, options);
  };
  // Not async: most responses name no file, and pass on without another promise frame.
  return function xSendfile(c, next) {
    // In middleware/chain.ts next() gives the answer; in Hono's compose, c.res holds it.
    const rest = next() as unknown as Response | Promise<Response | void>;
    if (rest instanceof Response) return answer(c, rest) as Promise<Response>;
    return rest.then((response) => answer(c, response instanceof Response ? response : c.res));
  };
}
