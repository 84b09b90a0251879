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
  child: getLogger(["sluice", "child"]),
};

/** Renders the message with values as they are (LogTape's own formatters quote strings). */
function renderMessage(parts: readonly unknown[]): string {
  let text = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    text += i % 2 === 0 || typeof part === "string" ? String(part) : JSON.stringify(part) ?? String(part);
  }
  return text;
}

/** One JSON object per line: timestamp, level, logger, message, then the properties flat. */
const jsonFormatter: TextFormatter = (record) =>
  JSON.stringify({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    logger: record.category.join("."),
    message: renderMessage(record.message),
    ...record.properties,
  }) + "\n";

/** One readable line: timestamp, level, logger, message, then key=value properties. */
const textFormatter: TextFormatter = (record) => {
  let line = `${new Date(record.timestamp).toISOString()} ${record.level.toUpperCase().padEnd(7)} ` +
    `${record.category.join(".")}: ${renderMessage(record.message)}`;
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
