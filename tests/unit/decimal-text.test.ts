/** @module hundredthsText writes what String(Math.round(ms * 100) / 100) writes. */

import { expect, test } from "bun:test";
import { hundredthsText } from "../../src/decimal-text.ts";

test("hundredthsText rounds to hundredths and writes them as JSON writes the rounded number", () => {
  expect(hundredthsText(0)).toBe("0");
  expect(hundredthsText(12)).toBe("12");
  expect(hundredthsText(0.5)).toBe("0.5");
  expect(hundredthsText(3.07)).toBe("3.07");
  expect(hundredthsText(3.0749)).toBe("3.07");
  expect(hundredthsText(3.075)).toBe(String(Math.round(3.075 * 100) / 100));
  expect(hundredthsText(9.999)).toBe("10");
  expect(hundredthsText(86_400_000 * 30.5)).toBe("2635200000"); // a month-long WebSocket
});

test("hundredthsText agrees with String(Math.round(ms * 100) / 100) across magnitudes", () => {
  const mismatches: number[] = [];
  for (let i = 0; i < 50_000; i++) {
    const ms = (i % 100) * 0.013 + (i % 7) * 10 ** (i % 9) + i / 997;
    if (hundredthsText(ms) !== String(Math.round(ms * 100) / 100)) mismatches.push(ms);
  }
  expect(mismatches).toEqual([]);
});
