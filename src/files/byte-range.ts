/**
 * @module The Range request header (RFC 9110 §14.2), for one file of known size. sluice
 * answers a single range; a request for several gets the whole file (200), which the RFC
 * allows and which keeps every response a plain byte stream.
 */

/** Inclusive byte offsets within the file. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * What a Range header asks of a file of `size` bytes: "full" (no usable range: absent, not
 * bytes, several ranges, or malformed, all of which RFC 9110 says to ignore), a satisfiable
 * range, or "unsatisfiable" (416).
 */
export function parseRange(header: string | null, size: number): ByteRange | "full" | "unsatisfiable" {
  if (header === null) return "full";
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return "full"; // other units, several ranges, garbage
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return "full";
  if (first === "") {
    // "-N": the last N bytes
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    // Satisfiable on an empty file (RFC 9110 section 14.1.1), but no 206 can say "no bytes":
    // the Range is ignored, as section 14.2 allows, and the empty file is sent whole.
    if (size === 0) return "full";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return "full"; // "5-3" is invalid syntax: ignored
  return { start, end };
}
