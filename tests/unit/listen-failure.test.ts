/** listenFailureReason: why a listener could not be opened, in the same words on both runtimes (the e2e test in cli.test.ts binds for real; binding port 80 needs a non-root user). */

import { expect, test } from "bun:test";
import { listenFailureReason } from "../../src/service.ts";

const failure = (message: string, code?: string) => Object.assign(new Error(message), code === undefined ? {} : { code });

test("a port below 1024 refused to a non-root user says what it needs", () => {
  const needs = "permission denied: a port below 1024 needs root or the CAP_NET_BIND_SERVICE capability (or choose a port from 1024)";
  expect(listenFailureReason(failure("permission denied 127.0.0.1:80", "EACCES"), "127.0.0.1", 80)).toBe(needs); // Bun's
  expect(listenFailureReason(failure("Permission denied (os error 13)", "EACCES"), "127.0.0.1", 80)).toBe(needs); // Deno's
  expect(listenFailureReason(failure("Permission denied (os error 13)", "EACCES"), "127.0.0.1", 8080)).toBe("permission denied");
});

test("an error without a known code keeps the runtime's message", () => {
  expect(listenFailureReason(failure("Invalid argument (os error 22)", "EINVAL"), "fe80::1", 8080)).toBe("Invalid argument (os error 22)");
});
