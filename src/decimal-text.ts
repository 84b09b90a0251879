/** @module hundredthsText: a duration as JSON writes it, rounded to two decimals, cheaply. */

const TENTHS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/**
 * `ms` rounded to hundredths, as `String(Math.round(ms * 100) / 100)` writes it ("12",
 * "0.5", "3.07"), from whole numbers: turning a fraction into text takes the runtime's
 * floating-point path, which under load cost about 0.3 us a call, twice per access record
 * (docs/runtime-notes.md). For finite, non-negative `ms`.
 */
export function hundredthsText(ms: number): string {
  const hundredths = Math.round(ms * 100);
  const whole = Math.floor(hundredths / 100);
  const fraction = hundredths - whole * 100;
  if (fraction === 0) return String(whole);
  if (fraction % 10 === 0) return `${whole}.${TENTHS[fraction / 10]}`;
  return `${whole}.${fraction < 10 ? "0" : ""}${fraction}`;
}
