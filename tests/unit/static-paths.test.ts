/** @module The rules of static file serving free of I/O: which targets name a file, which names are fingerprinted. */

import { describe, expect, test } from "bun:test";
import { isFingerprinted } from "../../src/files/fingerprint.ts";
import { requestedSegments } from "../../src/files/request-path.ts";

describe("requestedSegments", () => {
  test.each([
    ["http://h/assets/app.css", ["assets", "app.css"], false],
    ["http://h/assets/app.css?v=1", ["assets", "app.css"], false],
    ["http://h/", [], true],
    ["http://h/docs/", ["docs"], true],
    ["http://h/caf%C3%A9.txt", ["café.txt"], false],
    ["http://h/a%20b.txt", ["a b.txt"], false],
    ["http://h/.well-known/security.txt", [".well-known", "security.txt"], false],
  ])("%s names %p", (url, segments, directory) => {
    expect(requestedSegments(url)).toEqual({ segments, directory });
  });

  test.each([
    "http://h/../secret.txt",
    "http://h/a/../../secret.txt",
    "http://h/%2e%2e/secret.txt",
    "http://h/%2E%2e/secret.txt",
    "http://h/a/./b",
    "http://h/..%2fsecret.txt",
    "http://h/a%2Fb",
    "http://h/a%5c..%5csecret.txt",
    "http://h/a\\..\\secret.txt",
    "http://h/a%00.txt",
    "http://h/a//b",
    "http://h/%E0%A4%A",
    "http://h/.env",
    "http://h/.git/config",
  ])("%s is refused", (url) => {
    expect(requestedSegments(url)).toBeUndefined();
  });
});

describe("isFingerprinted", () => {
  test.each([
    "application-3b4c5d6e.css", // Propshaft
    "application-0e3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b.css", // Sprockets
    "application-0e3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b.css.gz",
    "main.3f2a9c1b7e0d4a5b6c7d.js", // webpack [contenthash]
    "index-B1x2Yz9Q.js", // Vite/Rollup
    "index-BF-iV3m8.js",
    "index-C_f7DnF2.css",
    "index-B1x2Yz9Q.js.map",
    "app-LRJRC5TG.js", // esbuild
    "trix-5dc2e3b8.digested.js", // Propshaft's already-digested marker
    "icons-a1B2c3D.digested.svg",
  ])("%s is fingerprinted", (name) => {
    expect(isFingerprinted(name)).toBe(true);
  });

  test.each([
    "application.css",
    "robots.txt",
    "favicon.ico",
    "report-20240101.pdf", // a date: digits only
    "logo-deadbeef.png", // letters only
    "my-stylesheet.css",
    "theme-darkMode.css", // camelCase, no digit
    "site-Overview.css",
    "jquery-3.7.1.min.js",
    "home2024.png",
    "3f2a9c1b7e.js", // the extension's part alone is the name, not a digest
    "index-B1x2Yz9Q", // no extension
  ])("%s is not", (name) => {
    expect(isFingerprinted(name)).toBe(false);
  });
});
