/** @module Logging: LogTape configured to write JSON lines or text to sluice's stdout. */

import {
  compareLogLevel,
  configure,
  dispose,
  getLogger,
  type LogLevel,
  type Logger,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";
import { jsonString } from "./json-string.ts";
import type { LineOutput } from "./output.ts";

export type { Logger };

export interface LogOptions {
  level: LogLevel;
  format: "json" | "text";
}

/** The loggers sluice writes to; every record carries an `event` property naming what happened. */
export const log = {
  lifecycle: getLogger(["sluice", "lifecycle"]),
  access: getLogger(["sluice", "access"]),
};

/** Renders the message with values as they are (LogTape's own formatters quote strings). */
function renderMessage(parts: readonly unknown[]): string {
  if (parts.length === 1) return String(parts[0]);
  let text = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    text += i % 2 === 0 || typeof part === "string" ? String(part) : JSON.stringify(part) ?? String(part);
  }
  return text;
}

// The formatters run once per request (access records): what repeats is computed once.
let lastTimestamp = -1;
let lastIso = "";
function isoTime(timestamp: number): string {
  if (timestamp !== lastTimestamp) {
    lastTimestamp = timestamp;
    lastIso = new Date(timestamp).toISOString();
  }
  return lastIso;
}

const categoryNames = new WeakMap<readonly string[], string>();
function loggerName(category: readonly string[]): string {
  let name = categoryNames.get(category);
  if (name === undefined) categoryNames.set(category, (name = category.join(".")));
  return name;
}

/**
 * One JSON line from its parts, `message` already JSON-encoded; `properties` is the inside
 * of a JSON object ("" for none).
 */
function jsonLine(timestamp: number, level: LogLevel, logger: string, message: string, properties: string): string {
  return `{"@timestamp":"${isoTime(timestamp)}","level":"${LEVEL_NAMES[level]}","logger":"${logger}",` +
    `"message":${message}${properties === "" ? "" : `,${properties}`}}\n`;
}

const LEVEL_NAMES: Record<LogLevel, string> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};

/** One JSON object per line: timestamp, level, logger, message, then the properties flat. */
const jsonFormatter: TextFormatter = (record) => {
  // Written out rather than stringifying a merged copy of the record: one allocation less
  // per line, which shows at tens of thousands of access records a second.
  const properties = JSON.stringify(record.properties);
  const message = jsonString(renderMessage(record.message));
  return jsonLine(record.timestamp, record.level, loggerName(record.category), message, properties.slice(1, -1));
};

/**
 * Writes records as JSON lines straight to the output, skipping LogTape's record, dispatch
 * and formatter (about half of an access record's cost); the line is the one the JSON
 * formatter would write for the same record. In force while logging is configured with the
 * JSON format, with that configuration's level.
 */
export class DirectJsonLog {
  readonly #out: LineOutput;
  readonly #lowest: LogLevel;

  constructor(out: LineOutput, lowest: LogLevel) {
    this.#out = out;
    this.#lowest = lowest;
  }

  /** True when a record of this level would be written. */
  enabled(level: LogLevel): boolean {
    return compareLogLevel(level, this.#lowest) >= 0;
  }

  /** Writes one record; `message` is JSON-encoded, `properties` the inside of a JSON object. */
  write(category: readonly string[], level: LogLevel, message: string, properties: string): void {
    this.#out.write(jsonLine(Date.now(), level, loggerName(category), message, properties));
  }
}

let direct: DirectJsonLog | undefined;

/**
 * The direct JSON writer, or undefined when records must go through LogTape (text format,
 * or logging not configured by setupLogging). Ask per record: a reload may change the level
 * or the format.
 */
export function directJsonLog(): DirectJsonLog | undefined {
  return direct;
}

/**
 * What must not reach a text line as it is: C0 controls (a newline would split the record,
 * which then reads as two), DEL and C1 controls (terminal escape sequences), and the Unicode
 * line and paragraph separators. JSON.stringify escapes only the C0 ones.
 */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const UNSAFE_IN_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const UNSAFE_IN_LINE_ALL = new RegExp(UNSAFE_IN_LINE.source, "g");
const ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `text` with every UNSAFE_IN_LINE character escaped as JSON writes it (\n, \u001b ...). */
function oneLine(text: string): string {
  if (!UNSAFE_IN_LINE.test(text)) return text;
  return text.replace(UNSAFE_IN_LINE_ALL, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * One readable line: timestamp, level, logger, message, then key=value properties. Values
 * in the message are written as they are (an error's text, the lines of a TOML excerpt),
 * so the line is escaped as a whole: one record, one line.
 */
const textFormatter: TextFormatter = (record) => {
  let line = `${isoTime(record.timestamp)} ${record.level.toUpperCase().padEnd(7)} ` +
    `${loggerName(record.category)}: ${renderMessage(record.message)}`;
  for (const [key, value] of Object.entries(record.properties)) {
    if (key !== "event") line += ` ${key}=${typeof value === "string" && /^[\w.:/-]*$/.test(value) ? value : JSON.stringify(value)}`;
  }
  return `${oneLine(line)}\n`;
};

/**
 * Sends every record to `out` synchronously (LogTape's own non-blocking mode drops records
 * under bursts); `out` writes asynchronously and is flushed before exit.
 */
export async function setupLogging(out: LineOutput, { level, format }: LogOptions): Promise<void> {
  const formatter = format === "json" ? jsonFormatter : textFormatter;
  direct = undefined;
  // The sink formats each record before returning, so LogTape need not copy the record for
  // it (LogTape's own marker for such sinks; it saves a copy of every record).
  const sink = (record: LogRecord): void => out.write(formatter(record));
  Object.defineProperty(sink, Symbol.for("LogTape.sinkSnapshotPolicy.immediate"), { value: true });
  await configure({
    reset: true,
    sinks: { out: sink },
    loggers: [
      { category: ["sluice"], lowestLevel: level, sinks: ["out"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["out"] },
    ],
  });
  // Only the ["sluice"] logger's own level applies to its children (none sets another).
  if (format === "json") direct = new DirectJsonLog(out, level);
}

/** Delivers every record logged so far; call before exit. */
export async function flushLogging(out: LineOutput): Promise<void> {
  direct = undefined;
  await dispose();
  await out.flush();
}
