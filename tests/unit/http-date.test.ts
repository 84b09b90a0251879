/** @module parseHttpDate: the three formats of RFC 9110 section 5.6.7, and nothing else. */

import { expect, test } from "bun:test";
import { parseHttpDate } from "../../src/http-date.ts";

const NOV_6_1994 = Date.UTC(1994, 10, 6, 8, 49, 37);

test.each([
  ["Sun, 06 Nov 1994 08:49:37 GMT", NOV_6_1994],
  ["Sunday, 06-Nov-94 08:49:37 GMT", NOV_6_1994],
  ["Sun Nov  6 08:49:37 1994", NOV_6_1994],
  [" Sun, 06 Nov 1994 08:49:37 GMT ", NOV_6_1994],
  ["Tue, 29 Feb 2028 00:00:00 GMT", Date.UTC(2028, 1, 29)],
])("%p is a date", (value, ms) => {
  expect(parseHttpDate(value, Date.UTC(2026, 0, 1))).toBe(ms);
});

test.each([
  "2099",
  "1",
  "2026-01-02T03:04:05Z",
  "Sun, 06 Nov 1994 08:49:37 UTC",
  "Sun, 6 Nov 1994 08:49:37 GMT",
  "sun, 06 nov 1994 08:49:37 GMT",
  "Sun, 31 Nov 1994 08:49:37 GMT",
  "Sun, 06 Nov 1994 24:00:00 GMT",
  "Sun, 06 Nov 1994 08:49:37 GMT; length=1",
  "",
])("%p is not", (value) => {
  expect(parseHttpDate(value)).toBeUndefined();
});

test("a two-digit year more than 50 years ahead is in the past century", () => {
  const now = Date.UTC(2026, 0, 1);
  expect(new Date(parseHttpDate("Thursday, 01-Jan-76 00:00:00 GMT", now)!).getUTCFullYear()).toBe(2076);
  expect(new Date(parseHttpDate("Friday, 01-Jan-77 00:00:00 GMT", now)!).getUTCFullYear()).toBe(1977);
});
