/** @module Parsers for option values: durations, sizes, ports, listen addresses, CIDR lists. */

/** A parser turns the text of a flag or variable into a value, or throws a RangeError saying why. */
export type ValueParser<T> = (text: string) => T;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The longest wait setTimeout takes (2^31-1 ms, about 24.8 days): both runtimes fire a longer
 * one after 1 ms, so a sweep re-arming it would spin, warning on every turn.
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

/** `250ms`, `5s`, `2m`, `1h`, or plain seconds (`30`, `1.5`); returns milliseconds. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text.trim());
  if (!match) throw new RangeError("expected a duration such as 250ms, 5s, 2m or plain seconds");
  const unit = match[2] ?? "s";
  const ms = Math.round(Number(match[1]) * DURATION_UNIT_MS[unit]!);
  // Rounded to 0 it would mean "never" for the timeouts where 0 turns them off.
  if (ms === 0 && Number(match[1]) > 0) throw new RangeError("expected 0 or a duration of at least 1ms");
  if (ms > MAX_DURATION_MS) throw new RangeError("expected a duration of at most 596h, the longest a timer can wait");
  return ms;
}

/**
 * As parseDuration, for a wait that ends in giving up (a 504, a child not ready): a duration
 * of 0, or one that rounds to 0 ms, is refused, as it would give up at once, every time.
 */
export function parseGiveUpAfter(text: string): number {
  const match = DURATION.exec(text.trim());
  if (match && Math.round(Number(match[1]) * DURATION_UNIT_MS[match[2] ?? "s"]!) === 0) {
    throw new RangeError("expected a duration of at least 1ms: 0 would give up at once, every time (for a long wait, give one, such as 1h)");
  }
  return parseDuration(text);
}

/** Formats milliseconds the way a user would write them back (`1.5s`, `250ms`, `2m`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const SIZE_UNIT: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** `1048576`, `512KiB`, `10MB`, `1GiB` (`k`/`m`/`g` alone are binary); returns bytes. */
export function parseSize(text: string): number {
  const match = SIZE.exec(text.trim());
  if (!match) throw new RangeError("expected a size such as 1048576, 512KiB, 10MB or 1GiB");
  const bytes = Math.floor(Number(match[1]) * SIZE_UNIT[(match[2] ?? "b").toLowerCase()]!);
  // Rounded down to 0 it would mean "no limit" (--max-request-body) or "off" (--cache-size).
  if (bytes === 0 && Number(match[1]) > 0) throw new RangeError("expected 0 or a size of at least 1 byte");
  // Beyond 2^53 a number is no longer exact: 400 nines would be Infinity, and said so in errors.
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`expected a size of at most ${Number.MAX_SAFE_INTEGER} bytes`);
  return bytes;
}

export function parseNonNegativeInteger(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new RangeError("expected a whole number of 0 or more");
  const value = Number(text);
  // Beyond 2^53 a number is no longer exact (it would be used rounded, or as Infinity).
  if (!Number.isSafeInteger(value)) throw new RangeError(`expected a whole number of at most ${Number.MAX_SAFE_INTEGER}`);
  return value;
}

export function parsePort(text: string): number {
  const port = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) throw new RangeError("expected a port number from 0 to 65535");
  return port;
}

export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * A host name or IP address. An IPv6 address may come in brackets, as in URLs and
 * --admin-listen (`[::1]`), and is returned without them: the runtimes connect to "[::1]"
 * as a name, and URLs built from it would bracket it twice.
 */
export function parseHost(text: string): string {
  const trimmed = text.trim();
  const bracketed = /^\[(.*)\]$/.exec(trimmed);
  const host = bracketed ? bracketed[1]! : trimmed;
  const valid = bracketed || host.includes(":")
    ? parseIp(host.split("%")[0]!)?.family === 6 // a zone (fe80::1%eth0) names an interface
    : /^[^\s/\[\]@?#]+$/.test(host);
  if (!valid) throw new RangeError("expected a host name or an IP address (IPv6 with or without brackets), without a port");
  return host;
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
/** host:port as written in a URL, an IPv6 address in brackets. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** What parseListenAddress expects, as its error says. */
export const LISTEN_ADDRESS_EXPECTED = "expected host:port, [ipv6]:port or :port";

export function parseListenAddress(text: string): ListenAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim());
  if (!match) throw new RangeError(LISTEN_ADDRESS_EXPECTED);
  let hostname: string;
  try {
    hostname = match[1] !== undefined ? parseHost(`[${match[1]}]`) : match[2] ? parseHost(match[2]) : "0.0.0.0";
  } catch (error) {
    throw new RangeError(LISTEN_ADDRESS_EXPECTED, { cause: error });
  }
  return { hostname, port: parsePort(match[3]!) };
}

export function parseBoolean(text: string): boolean {
  const value = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(value)) return true;
  if (["0", "false", "no", "off"].includes(value)) return false;
  throw new RangeError("expected true or false");
}

export function parseChoice<T extends string>(choices: readonly T[]): ValueParser<T> {
  return (text) => {
    const value = text.trim() as T;
    if (!choices.includes(value)) {
      const near = nearestChoice(value, choices);
      throw new RangeError(`expected one of ${choices.join(", ")}${near === undefined ? "" : ` (did you mean ${near}?)`}`);
    }
    return value;
  };
}

/**
 * The choice a refused value most likely meant: the same in another case or with "_" for "-"
 * (WARNING, on_failure), without its SIG prefix (TERM), or the one choice it begins (warn).
 */
function nearestChoice<T extends string>(value: string, choices: readonly T[]): T | undefined {
  const plain = value.toLowerCase().replaceAll("_", "-");
  const same = choices.find((choice) => [plain, `sig${plain}`].includes(choice.toLowerCase()));
  if (same !== undefined) return same;
  const begun = plain === "" ? [] : choices.filter((choice) => choice.toLowerCase().startsWith(plain));
  return begun.length === 1 ? begun[0] : undefined;
}

/** An IPv4 or IPv6 network, as parsed from CIDR notation. */
export interface Cidr {
  family: 4 | 6;
  /** The address as a 32- or 128-bit number. */
  bits: bigint;
  prefix: number;
}

/** Comma-separated CIDRs or addresses: `10.0.0.0/8, 127.0.0.1, ::1, fd00::/8`. */
export function parseCidrList(text: string): Cidr[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map((part) => {
      const slash = part.indexOf("/");
      const address = slash < 0 ? part : part.slice(0, slash);
      const prefixText = slash < 0 ? undefined : part.slice(slash + 1);
      const parsed = parseIp(address);
      if (!parsed && /(?:^|[.:])0\d+(?:\.|$)/.test(address) && parseIp(address.replace(/(^|[.:])0+(?=\d)/g, "$1"))) {
        // 010.0.0.0 is 8.0.0.0 to inet_aton and to many tools, 10.0.0.0 to others.
        throw new RangeError(`"${part}" has an IPv4 octet with a leading zero, which tools read as octal or as decimal: write it without`);
      }
      if (!parsed) throw new RangeError(`"${part}" is not an IP address or CIDR range`);
      const width = parsed.family === 4 ? 32 : 128;
      // Digits only: Number() would take "", " 8" or "0x8" too.
      const prefix = prefixText === undefined ? width : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      if (!(prefix >= 0 && prefix <= width)) {
        throw new RangeError(`"${part}" has a prefix length outside 0-${width}`);
      }
      // An IPv4-mapped network (::ffff:10.0.0.0/104) is the IPv4 network it maps.
      if (parsed.family === 6 && prefix >= 96 && parsed.bits >> 32n === 0xffffn) {
        return { family: 4 as const, bits: parsed.bits & 0xffffffffn, prefix: prefix - 96 };
      }
      return { ...parsed, prefix };
    });
}

/**
 * True when `address` lies in one of `networks`; IPv4-mapped IPv6 addresses
 * (`::ffff:10.0.0.1`, `::ffff:a00:1`) count as IPv4, and an IPv6 zone (`%eth0`) is ignored.
 */
export function cidrsContain(networks: readonly Cidr[], address: string): boolean {
  if (networks.length === 0) return false;
  const zone = address.indexOf("%");
  let ip = parseIp(zone < 0 ? address : address.slice(0, zone));
  if (!ip) return false;
  if (ip.family === 6 && ip.bits >> 32n === 0xffffn) ip = { family: 4, bits: ip.bits & 0xffffffffn };
  const { family, bits } = ip;
  return networks.some((net) => {
    if (net.family !== family) return false;
    const shift = BigInt((net.family === 4 ? 32 : 128) - net.prefix);
    return (net.bits >> shift) === (bits >> shift);
  });
}

function parseIpv4(text: string): bigint | undefined {
  if (!/^(?:(?:0|[1-9]\d{0,2})\.){3}(?:0|[1-9]\d{0,2})$/.test(text)) return undefined;
  const octets = text.split(".").map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((acc, o) => (acc << 8n) | BigInt(o), 0n);
}

function parseIp(text: string): { family: 4 | 6; bits: bigint } | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { family: 4, bits: v4 };
  if (!text.includes(":")) return undefined;
  // A dotted IPv4 tail (::ffff:1.2.3.4) stands for the last two groups.
  let tail4: bigint | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    tail4 = parseIpv4(text.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(tail4 >> 16n).toString(16)}:${(tail4 & 0xffffn).toString(16)}`;
  }
  if (!/^[0-9a-f:]+$/i.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (groups.some((g) => g.length === 0 || g.length > 4)) return undefined;
  return { family: 6, bits: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}
