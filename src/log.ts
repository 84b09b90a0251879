/** @module Logging: LogTape configured to write JSON lines or text to sluice's stdout. */

import {
  configure,
  dispose,
  getLogger,
  type LogLevel,
  type Logger,
  type LogRecord,
  type TextFormatter,
} from "@logtape/logtape";
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

/** One JSON object per line: timestamp, level, logger, message, then the properties flat. */
const jsonFormatter: TextFormatter = (record) => {
  // Written out rather than stringifying a merged copy of the record: one allocation less
  // per line, which shows at tens of thousands of access records a second.
  const properties = JSON.stringify(record.properties);
  return `{"@timestamp":"${isoTime(record.timestamp)}","level":"${record.level.toUpperCase()}",` +
    `"logger":"${loggerName(record.category)}","message":${JSON.stringify(renderMessage(record.message))}` +
    `${properties === "{}" ? "" : `,${properties.slice(1, -1)}`}}\n`;
};

/** One readable line: timestamp, level, logger, message, then key=value properties. */
const textFormatter: TextFormatter = (record) => {
  let line = `${isoTime(record.timestamp)} ${record.level.toUpperCase().padEnd(7)} ` +
    `${loggerName(record.category)}: ${renderMessage(record.message)}`;
  for (const [key, value] of Object.entries(record.properties)) {
    if (key !== "event") line += ` ${key}=${typeof value === "string" && /^[\w.:/-]*$/.test(value) ? value : JSON.stringify(value)}`;
  }
  return `${line}\n`;
};

/**
 * Sends every record to `out` synchronously (LogTape's own non-blocking mode drops records
 * under bursts); `out` writes asynchronously and is flushed before exit.
 */
export async function setupLogging(out: LineOutput, { level, format }: LogOptions): Promise<void> {
  const formatter = format === "json" ? jsonFormatter : textFormatter;
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
}

/** Delivers every record logged so far; call before exit. */
export async function flushLogging(out: LineOutput): Promise<void> {
  await dispose();
  await out.flush();
}
