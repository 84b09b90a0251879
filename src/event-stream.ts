/**
 * @module Server-sent event streams (text/event-stream): where such a body may end cleanly. A
 * stream cut at the drain deadline ends with its proper last chunk when it stands between two
 * events, so EventSource clients reconnect (elsewhere) and lose nothing; never in the middle of one.
 */

export function isEventStream(headers: Headers): boolean {
  return /^\s*text\/event-stream\s*(;|$)/i.test(headers.get("content-type") ?? "");
}

/**
 * Line ends that close an event: a blank line after a line end, with CR, LF or CRLF each
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream).
 * CRLF counts as one line end, so a stream ending in "data: x\r\n" is in the middle of an event.
 */
const EVENT_END = /(\n\n|\r\r|\n\r\n|\r\r\n|\n\r)$/;

/** Follows the last bytes of an event stream: is it between two events right now? */
export class EventBoundary {
  /** The last three characters (Latin-1): as many as the longest event end. The start of a stream is a boundary. */
  #tail = "\n\n";

  observe(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#tail = (this.#tail + String.fromCharCode(...chunk.subarray(-3))).slice(-3);
  }

  get atBoundary(): boolean {
    return EVENT_END.test(this.#tail);
  }
}
