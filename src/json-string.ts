/** @module jsonString: a string as JSON writes it, fast for the plain ASCII most values are. */

/**
 * True when `text` is plain printable ASCII without quotes or backslashes (nearly every
 * method, path, id, address and attribute value): JSON writes it as is, between quotes.
 */
export function isPlainJsonText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return false;
  }
  return true;
}

/**
 * A string as JSON writes it: plain text is quoted as is, which is cheaper than a
 * JSON.stringify call (the OTLP encoder makes several per span).
 */
export function jsonString(text: string): string {
  return isPlainJsonText(text) ? `"${text}"` : JSON.stringify(text);
}
