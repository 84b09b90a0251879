/** @module Both runtime adapters pass the same behaviour checks (tests/runtime/contract.ts). */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BUN, DENO, ROOT, track } from "../harness.ts";

const CONTRACT = join(ROOT, "tests/runtime/contract.ts");
const RUNNERS = [
  { name: "bun", command: [BUN, CONTRACT] },
  { name: "deno", command: [DENO, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort", CONTRACT] },
];

describe.each(RUNNERS)("runtime adapter ($name)", ({ name, command }) => {
  test("behaves as the Runtime interface says", async () => {
    const proc = Bun.spawn(command, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    track(proc.pid);
    const [code, stdout, stderr] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(stdout)).toEqual({
      runtime: name,
      remoteAddress: "127.0.0.1",
      refusingAtOnce: "refused",
      probeAfterClose: false,
      inFlightAfterClose: 200,
      probeClosedPort: false,
      freePort: { inRange: true, bound: true, answers: "picked" },
      exit: { code: 3, signal: null, stdout: "out\n", stderr: "err\n" },
      killed: { code: 137, signal: "SIGKILL" },
      ownGroup: true,
      killGroup: true,
      groupExit: { code: 143, signal: "SIGTERM" },
      killGroupWhenGone: false,
      childEnv: ["given", "unset"],
      gzip: { encoding: "gzip", exact: true },
      host: "example.test:8080",
      acceptEncodingAdded: false,
      files: {
        whole: { status: 200, type: "text/plain; charset=utf-8", length: "100000", same: true },
        range: { status: 206, contentRange: "bytes 99990-99999/100000", body: "0123456789" },
        notModified: 304,
        unsatisfiable: 416,
        small: { status: 200, length: "1000", same: true },
        smallRange: { status: 206, contentRange: "bytes 10-19/1000", body: "0123456789" },
        missing: 404,
        directory: 404,
      },
      handlerError: { status: 500, namesPath: false },
      renamedOver: "old-content",
      shrunkBody: "failed",
      cancelAtEnd: "settled",
      realPath: { symlink: true, dotDot: true, missing: "undefined" },
      envHasPath: true,
    });
  }, 60_000);
});
