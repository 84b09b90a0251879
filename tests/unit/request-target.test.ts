/** @module The request target read from Request.url as each runtime builds it, and the Host rule. */

import { describe, expect, test } from "bun:test";
import { isValidHost, requestPath, requestTarget, wireTarget } from "../../src/request-target.ts";

describe("requestTarget and requestPath", () => {
  test("an absolute URL gives its path and query", () => {
    expect(requestTarget("http://app.example/a/b?c=1")).toBe("/a/b?c=1");
    expect(requestTarget("http://[::1]:8080/")).toBe("/");
    expect(requestTarget("http://app.example//double")).toBe("//double");
    expect(requestPath("http://app.example/a/b?c=1")).toBe("/a/b");
  });

  test("a query or fragment right after the authority belongs to the empty path (Deno's absolute form), never names a path", () => {
    expect(requestTarget("http://app.example?z=/admin")).toBe("/?z=/admin");
    expect(requestPath("http://app.example?z=/admin")).toBe("/");
    expect(requestTarget("http://app.example#/admin")).toBe("/#/admin");
    expect(requestPath("http://app.example#/admin")).toBe("/");
    expect(requestPath("http://app.example/a.txt#frag")).toBe("/a.txt");
  });

  test("Bun's bare target (no usable Host) is the target itself", () => {
    expect(requestTarget("/a?b=1")).toBe("/a?b=1");
    expect(requestPath("/a?b=1")).toBe("/a");
    expect(requestTarget("//x")).toBe("//x");
  });

  test("no path: CONNECT's authority form (Bun), an origin alone (Deno), nothing", () => {
    expect(requestTarget("evil.example:443")).toBeUndefined();
    expect(requestTarget("http://evil.example:443")).toBeUndefined();
    expect(requestTarget("")).toBeUndefined();
    expect(requestPath("evil.example:443")).toBe("");
  });
});

describe("isValidHost", () => {
  test("host names, addresses, ports and the empty Host pass", () => {
    for (const host of ["app.example", "app.example:8443", "localhost", "192.0.2.1:80", "[2001:db8::1]", "[::1]:3000", "xn--caf-dma.example", "a_b.example", "app.example:", ""]) {
      expect({ host, valid: isValidHost(host) }).toEqual({ host, valid: true });
    }
  });

  test("paths, userinfo, queries, fragments, spaces, two hosts and bad ports fail", () => {
    for (const host of ["app.example/admin", "app.example@evil", "app.example?x", "app.example#x", "app example", "a.example, b.example", "app.example:port", "app.example:123456", "[::1", "app.example\\x", "café.example", "app.example:80:80"]) {
      expect({ host, valid: isValidHost(host) }).toEqual({ host, valid: false });
    }
  });
});

describe("wireTarget", () => {
  test("visible ASCII goes as it is", () => {
    expect(wireTarget("/a/b?c=%20&d=~!$'()*")).toBe("/a/b?c=%20&d=~!$'()*");
  });

  test("characters outside ASCII go percent-encoded as UTF-8, as Bun gives them (a lone surrogate as U+FFFD)", () => {
    expect(wireTarget("/caf\u00e9?q=\u20ac")).toBe("/caf%C3%A9?q=%E2%82%AC");
    expect(wireTarget("/\u{1F600}")).toBe("/%F0%9F%98%80");
    expect(wireTarget("/a\ud800b")).toBe("/a%EF%BF%BDb");
    // Never the code's low byte: these would be CR, LF, space and "/".
    expect(wireTarget("/\u010d\u010a\u0120\u012f")).toBe("/%C4%8D%C4%8A%C4%A0%C4%AF");
  });

  test.each(["/a b", "/a\tb", "/a\r\nx: 1", "/a\u0000", "/a\u007f", "/\u00e9 "])("refuses %j", (target) => {
    expect(() => wireTarget(target)).toThrow("invalid request target");
  });
});
