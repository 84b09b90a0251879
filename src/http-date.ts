/**
 * @module parseHttpDate: an HTTP-date (RFC 9110 section 5.6.7) and nothing else. Date.parse
 * takes whatever the JS engine understands ("2099", "1"), which conditional headers must
 * ignore (sections 13.1.3 and 13.1.4) instead of reading as a date.
 */

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTH = `(${MONTHS.join("|")})`;
const TIME = "(\\d\\d):(\\d\\d):(\\d\\d)";
/** Sun, 06 Nov 1994 08:49:37 GMT */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d\\d) ${MONTH} (\\d{4}) ${TIME} GMT$`);
/** Sunday, 06-Nov-94 08:49:37 GMT (obsolete) */
const RFC850_DATE = new RegExp(`^${LONG_DAY}, (\\d\\d)-${MONTH}-(\\d\\d) ${TIME} GMT$`);
/** Sun Nov  6 08:49:37 1994 (obsolete) */
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} ([ \\d]\\d) ${TIME} (\\d{4})$`);

function utc(year: number, month: string, day: number, hour: number, minute: number, second: number): number | undefined {
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const ms = Date.UTC(year, MONTHS.indexOf(month), day, hour, minute, Math.min(second, 59));
  // Day 31 of a 30-day month would roll over into the next one: not a date.
  return new Date(ms).getUTCDate() === day ? ms : undefined;
}

/** A two-digit year more than 50 years ahead is the most recent past one (section 5.6.7). */
function fullYear(twoDigits: number, nowMs: number): number {
  const current = new Date(nowMs).getUTCFullYear();
  const year = current - (current % 100) + twoDigits;
  return year > current + 50 ? year - 100 : year;
}

/**
 * The time an HTTP-date names, in ms since the epoch; undefined when `value` is not one of
 * the three formats (surrounding whitespace aside).
 */
export function parseHttpDate(value: string, nowMs = Date.now()): number | undefined {
  const text = value.trim();
  let m = IMF_FIXDATE.exec(text);
  if (m) return utc(Number(m[3]), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = RFC850_DATE.exec(text);
  if (m) return utc(fullYear(Number(m[3]), nowMs), m[2]!, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  m = ASCTIME_DATE.exec(text);
  if (m) return utc(Number(m[6]), m[1]!, Number(m[2]!.trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  return undefined;
}
