/** @module jsonString: a string as JSON writes it, fast for the plain ASCII most values are. */

/**
 * A string as JSON writes it. Plain printable ASCII (nearly every method, path, id, address
 * and attribute value) is quoted as is: cheaper than a JSON.stringify call, which the access
 * log and the OTLP encoder make several times per request.
 */
export function jsonString(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return JSON.stringify(text);
  }
  return `"${text}"`;
}
