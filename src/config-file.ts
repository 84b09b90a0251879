/** @module The --config file: TOML setting options by their flags' names, turned into option sources. */

import { parse, TomlDate, TomlError } from "smol-toml";
import { ConfigError, isListOption, nearestOptionName, type OptionKey, optionKeyOf, OPTIONS, type OptionSources, type SourcedText } from "./config.ts";
import { TRACING_VARIABLES } from "./telemetry/tracing-config.ts";

/** What a configuration file sets: options, and OTEL_* variables for tracing. */
export interface ConfigFile {
  options: OptionSources;
  /** `OTEL_EXPORTER_OTLP_ENDPOINT = "..."` and the like, below the real environment's, with where each is. */
  otel: Record<string, SourcedText>;
}

/**
 * Reads what a configuration file sets. Each top-level key is an option's flag name
 * (`drain-timeout = "15s"`); a string, number or boolean becomes the option's text and an
 * array (a list option's only) its comma-separated list, so that file values go through the same parsers as flags
 * and variables (resolveConfig parses them, naming `<path> line <n> (<key>)`). Throws
 * ConfigError naming the file, the line and the key for invalid TOML, an unknown key, a
 * table, `config` itself, or a value of no usable type. Keys named as the OTEL_* variables
 * sluice reads configure tracing, as those variables would (the environment wins).
 */
export function loadConfigFile(path: string, text: string): ConfigFile {
  let document: Record<string, unknown>;
  try {
    document = parse(text);
  } catch (error) {
    if (!(error instanceof TomlError)) throw error;
    // The lines shown are logged (a failed reload's record): credentials in them are masked.
    const shown = codeBlock(withSecretsMasked(text), error.line, error.column);
    throw new ConfigError(`Invalid TOML in ${path} line ${error.line}, column ${error.column}: ${tomlReason(error, text)}\n${shown}`, {
      cause: error,
    });
  }
  const lines = topLevelKeyLines(text);
  const sources: OptionSources = {};
  const otel: ConfigFile["otel"] = {};
  for (const [name, value] of Object.entries(document)) {
    const line = lines.get(name);
    const where = line === undefined ? path : `${path} line ${line}`;
    if (name === "config") throw new ConfigError(`Cannot set "config" in ${where}: a configuration file cannot name another one`);
    if (isTable(value)) {
      throw new ConfigError(
        `Cannot use the table "${name}" in ${where}: options go at the top level, before any [table], named as their flags (drain-timeout = "15s")`,
      );
    }
    const key = optionKeyOf(name);
    // An OTEL_* key sluice does not read (a typo of one, OTEL_PROPAGATORS) would be ignored, tracing silently unchanged.
    if (key === undefined && !TRACING_VARIABLES.includes(name)) {
      const near = nearestOptionName(name);
      const hint = name.startsWith("OTEL_")
        ? ` (the OTEL_* keys sluice reads: ${TRACING_VARIABLES.join(", ")})`
        : near === undefined ? "" : ` (did you mean ${near}?)`;
      throw new ConfigError(`Unknown key "${name}" in ${where}${hint}`);
    }
    const from = `${where} (${name})`;
    if (key !== undefined && Array.isArray(value)) checkListItems(key, from, value);
    const optionText = textOf(value);
    if (optionText === undefined) {
      throw new ConfigError(`Cannot parse ${from}: expected a string, a number, a boolean or an array of them; current value is ${kindOf(value)}`);
    }
    if (key === undefined) otel[name] = { text: optionText, from };
    else sources[key] = { text: optionText, from };
  }
  return { options: sources, otel };
}

/**
 * An array is joined with commas into the option's text, so it must be a list option's, with
 * no comma inside an item: `public-dir = ["a", "b"]` would be the directory "a,b", and
 * `x-sendfile-dirs = ["/srv/a,b"]` the directories "/srv/a" and "b".
 */
function checkListItems(key: OptionKey, from: string, items: unknown[]): void {
  if (!isListOption(key)) {
    const lists = (Object.keys(OPTIONS) as OptionKey[]).filter(isListOption).map((list) => OPTIONS[list].name).join(" and ");
    throw new ConfigError(`Cannot parse ${from}: expected one value, not an array (only ${lists} take a list); current value is an array of ${items.length} item${items.length === 1 ? "" : "s"}`);
  }
  const index = items.findIndex((item) => typeof item === "string" && item.includes(","));
  if (index >= 0) {
    throw new ConfigError(`Cannot parse ${from}: item ${index + 1} holds a comma, which would split it in two: give each value as an item of its own; current value is "${items[index] as string}"`);
  }
}

/**
 * The text of a configuration file, which TOML requires to be UTF-8 (a BOM is dropped).
 * Throws ConfigError naming the first line that is not: decoding it leniently would turn a
 * Latin-1 path or header value into U+FFFD and use that.
 */
export function decodeConfigFile(path: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    // A newline byte never occurs inside a multi-byte sequence, so lines decode on their own.
    const decoder = new TextDecoder("utf-8", { fatal: true });
    let line = 1;
    for (let start = 0; start <= bytes.length; line++) {
      const end = bytes.indexOf(10, start);
      try {
        decoder.decode(bytes.subarray(start, end < 0 ? bytes.length : end));
      } catch {
        break;
      }
      start = end < 0 ? bytes.length + 1 : end + 1;
    }
    throw new ConfigError(`Invalid TOML in ${path} line ${line}: not valid UTF-8 (a TOML file is UTF-8)`, { cause: error });
  }
}

/** Characters of each line a code block shows, around the error's column. */
const CODE_BLOCK_WIDTH = 100;

/**
 * The line of a TOML error and the lines around it, the column marked, as smol-toml's
 * codeblock shows them, but each cut to CODE_BLOCK_WIDTH characters around the column: shown
 * whole, a long line (a 200 kB comment) would fill stderr and a failed reload's record.
 */
function codeBlock(text: string, line: number, column: number): string {
  const lines = text.split(/\r?\n/);
  const numberWidth = String(line + 1).length;
  const start = Math.max(0, column - 1 - CODE_BLOCK_WIDTH / 2);
  const cut = (content: string): string =>
    `${start > 0 ? "..." : ""}${content.slice(start, start + CODE_BLOCK_WIDTH)}${content.length > start + CODE_BLOCK_WIDTH ? "..." : ""}`;
  const block: string[] = [];
  for (let number = line - 1; number <= line + 1; number++) {
    const content = lines[number - 1];
    if (!content) continue;
    block.push(`${String(number).padEnd(numberWidth)}:  ${cut(content)}`);
    if (number === line) block.push(`${" ".repeat(numberWidth + 3 + (start > 0 ? 3 : 0) + column - 1 - start)}^`);
  }
  return block.join("\n");
}

/** smol-toml's reason without its prefix and code block, with a hint for the likeliest mistake. */
function tomlReason(error: TomlError, text: string): string {
  const reason = error.message.replace(/^Invalid TOML document: /, "").split("\n\n")[0]!;
  // A key written twice (a line appended to a file that had it): name it, and its other line.
  if (/redefine/.test(reason)) {
    const key = /^\s*(["']?)([A-Za-z0-9_-]+)\1\s*=/.exec(text.split("\n")[error.line - 1] ?? "")?.[2];
    const first = key === undefined ? undefined : topLevelKeyLines(text).get(key);
    if (key !== undefined && first !== undefined && first < error.line) return `${key} is set twice, on line ${first} and here: keep one`;
  }
  // `drain-timeout = 15s` or `log-level = debug`: TOML wants quotes around text.
  return /numeric literal|invalid value/.test(reason) ? `${reason} (text needs quotes: ${quotedLine(text, error.line)})` : reason;
}

/**
 * The line `line` of `text` with its value quoted (`log-level = "debug"`), when it is one
 * key = unquoted value; `drain-timeout = "15s"` otherwise, and for a key that holds credentials,
 * whose value is never shown.
 */
function quotedLine(text: string, line: number): string {
  const source = text.split("\n")[line - 1]?.replace(/\r$/, "") ?? "";
  const match = /^\s*([A-Za-z0-9_-]+)\s*=\s*([^\s"'#[{][^#]*?)\s*(?:#.*)?$/.exec(source);
  if (match === null || SECRET_KEY.test(match[1]!)) return 'drain-timeout = "15s"';
  return `${match[1]} = ${JSON.stringify(match[2])}`;
}

function isTable(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof TomlDate);
}

/** The option text of a TOML value, or undefined when it has none (dates, tables, nested arrays). */
function textOf(value: unknown, inArray = false): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value) && !inArray) {
    const parts = value.map((item) => textOf(item, true));
    return parts.every((part) => part !== undefined) ? parts.join(",") : undefined;
  }
  return undefined;
}

/** What a value without option text is (a date, or an array holding one, a table or an array). */
function kindOf(value: unknown): string {
  if (value instanceof TomlDate) return "a date";
  if (!Array.isArray(value)) return "a table";
  const odd: unknown = value.find((item) => textOf(item, true) === undefined);
  return `an array holding ${Array.isArray(odd) ? "an array" : kindOf(odd)}`;
}

// At the start of a line: a key (bare or quoted) followed by `=` or by the `.` of a dotted
// key, or a [table] or [[array of tables]] header; either way the key's first part is the
// top-level name.
const LINE_START = /[ \t]*(\[{0,2})[ \t]*("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[A-Za-z0-9_-]+)[ \t]*[.=\]]/y;

/**
 * The line where each top-level key is first defined (smol-toml keeps no positions). A small
 * scan of a document that already parsed: it skips comments, strings and values spanning
 * lines (multi-line strings and arrays); after the first [table] header only headers
 * define top-level names.
 */
export function topLevelKeyLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let line = 1;
  let depth = 0; // brackets and braces of a value still open
  let lineStart = true;
  let inTable = false;
  for (let i = 0; i < text.length;) {
    if (lineStart && depth === 0) {
      LINE_START.lastIndex = i;
      const match = LINE_START.exec(text);
      const header = match !== null && match[1] !== "";
      if (match && (header || !inTable)) {
        const name = unquote(match[2]!);
        if (!lines.has(name)) lines.set(name, line);
        i = LINE_START.lastIndex;
      }
      if (header) {
        inTable = true;
        const end = text.indexOf("\n", i); // the rest of a header line is its name and a comment
        i = end < 0 ? text.length : end;
      }
    }
    lineStart = false;
    const c = text[i];
    if (c === "\n") {
      line++;
      lineStart = true;
      i++;
    } else if (c === "#") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (c === '"' || c === "'") {
      const end = endOfString(text, i);
      for (let j = i; j < end; j++) if (text[j] === "\n") line++;
      i = end;
    } else {
      if (c === "[" || c === "{") depth++;
      else if (c === "]" || c === "}") depth--;
      i++;
    }
  }
  return lines;
}

/**
 * The index just past the string (basic or literal, single- or multi-line) opening at `start`.
 * A single-line one left open ends at its line's end (where TOML says it is in error).
 */
function endOfString(text: string, start: number): number {
  const quote = text[start]!;
  const triple = quote.repeat(3);
  const multiLine = text.startsWith(triple, start);
  for (let i = start + (multiLine ? 3 : 1); i < text.length; i++) {
    if (text[i] === "\n" && !multiLine) return i;
    if (text[i] === "\\" && quote === '"') i++;
    else if (text[i] === quote && (!multiLine || text.startsWith(triple, i))) {
      if (!multiLine) return i + 1;
      // Up to two more quotes belong to the content (`"""a""""` holds `a"`).
      let end = i + 3;
      while (end < i + 5 && text[end] === quote) end++;
      return end;
    }
  }
  return text.length;
}

/**
 * Keys whose values hold credentials: OTEL_EXPORTER_OTLP_HEADERS and its TRACES_ form
 * (`authorization=Bearer ...`), and misspellings of them (a typo shows in the lines around
 * another error too).
 */
const SECRET_KEY = /^OTEL_.*HEADER/i;

/**
 * `text` with what SECRET_KEY keys hold written over with asterisks: their values (to the end
 * of a value spanning lines, or of its line when it is broken), and a [table] of theirs to the
 * next header. Lines and columns stay where they were, for the code block of a TOML error:
 * that shows the lines around the error, and a failed reload logs it.
 */
export function withSecretsMasked(text: string): string {
  const spans: [number, number][] = [];
  let secretTable = -1; // where the body of a secret [table] began, while in one
  for (let i = 0; i < text.length;) {
    LINE_START.lastIndex = i;
    const match = LINE_START.exec(text);
    const header = match !== null && match[1] !== "";
    if (header && secretTable >= 0) spans.push([secretTable, i]), (secretTable = -1);
    const secret = match !== null && SECRET_KEY.test(unquote(match[2]!));
    let end: number;
    if (header) {
      end = text.indexOf("\n", LINE_START.lastIndex);
      end = end < 0 ? text.length : end;
      if (secret) secretTable = end;
    } else if (match !== null && secretTable < 0 && secret) {
      let start = LINE_START.lastIndex;
      while (text[start] === " " || text[start] === "\t") start++;
      end = endOfValue(text, start);
      spans.push([start, end]);
    } else {
      end = endOfValue(text, i);
    }
    i = end + 1; // past the line break
  }
  if (secretTable >= 0) spans.push([secretTable, text.length]);
  let masked = "";
  let from = 0;
  for (const [start, end] of spans) {
    masked += text.slice(from, start) + text.slice(start, end).replace(/[^\r\n]/g, "*");
    from = end;
  }
  return masked + text.slice(from);
}

/** Where what starts at `start` ends: the line break after it, outside strings, arrays and inline tables (or the text's end). */
function endOfValue(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length;) {
    const c = text[i];
    if (c === "\n" && depth === 0) return i;
    if (c === "#") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end;
    } else if (c === '"' || c === "'") {
      i = endOfString(text, i);
    } else {
      if (c === "[" || c === "{") depth++;
      else if ((c === "]" || c === "}") && depth > 0) depth--;
      i++;
    }
  }
  return text.length;
}

function unquote(key: string): string {
  if (key.startsWith("'")) return key.slice(1, -1);
  if (!key.startsWith('"')) return key;
  try {
    return JSON.parse(key) as string;
  } catch {
    return key.slice(1, -1); // a TOML escape JSON lacks (\U0001F600): good enough for a line number
  }
}
