/** @module sameObject: whether two /proc/self/fdinfo texts name one file, pipe or socket. */

import { describe, expect, test } from "bun:test";
import { sameObject } from "../../src/runtime/shared-output.ts";

const fdinfo = (mount: number, inode?: number) => `pos:\t0\nflags:\t01\nmnt_id:\t${mount}\n${inode === undefined ? "" : `ino:\t${inode}\n`}`;

describe("sameObject", () => {
  test("the same inode on the same mount is one object (2>&1)", () => {
    expect(sameObject(fdinfo(16, 995366), fdinfo(16, 995366))).toBe(true);
  });

  test("another inode, or the same inode number on another mount, is another object", () => {
    expect(sameObject(fdinfo(16, 995366), fdinfo(16, 995369))).toBe(false);
    expect(sameObject(fdinfo(16, 995366), fdinfo(27, 995366))).toBe(false);
  });

  test("without an ino line (kernels before 5.14) or readable text, the streams are taken as separate", () => {
    expect(sameObject(fdinfo(16), fdinfo(16))).toBe(false);
    expect(sameObject("", "")).toBe(false);
  });
});
