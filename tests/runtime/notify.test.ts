/**
 * @module Runtime.notify (sd_notify) on Bun, on Deno and inside a Bun-compiled binary: a
 * Python receiver binds the sockets (a path and an abstract name) and reports exactly which
 * datagrams arrived.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, DENO, ROOT, tempDir, track } from "../harness.ts";

const FIXTURES = join(ROOT, "tests/runtime/fixtures");
const SENDER = join(FIXTURES, "notify-sender.ts");
const RECEIVER = join(FIXTURES, "notify-receiver.py");
const DENO_RUN = [DENO, "run", "--allow-all", "--unstable-net", "--unstable-no-legacy-abort"];
/** sun_path is 108 bytes: a path of 107 bytes plus its NUL, or NUL plus a 107-byte name. */
const SUN_PATH_MAX = 107;

let dir: string;
let compiled: string;

beforeAll(async () => {
  dir = tempDir();
  // The sender compiled as the release binary is (compile.sh's flags): FFI must work there too.
  compiled = join(dir, "notify-sender");
  const build = Bun.spawn(
    [BUN, "build", SENDER, "--compile", "--minify", "--sourcemap=none", "--no-compile-autoload-dotenv",
      "--no-compile-autoload-bunfig", "--outfile", compiled],
    { cwd: ROOT, stdout: "pipe", stderr: "pipe" },
  );
  track(build.pid);
  const [code, stderr] = await Promise.all([build.exited, new Response(build.stderr).text()]);
  if (code !== 0) throw new Error(`bun build --compile failed: ${stderr}`);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Binds `addresses`, runs `send`, then returns every datagram each address received. */
async function receive(addresses: string[], send: () => Promise<void>): Promise<Record<string, string[]>> {
  const receiver = Bun.spawn(["python3", RECEIVER, ...addresses], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  track(receiver.pid);
  const reader = receiver.stdout.getReader();
  const decoder = new TextDecoder();
  let output = "";
  while (!output.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`receiver failed: ${await new Response(receiver.stderr).text()}`);
    output += decoder.decode(value, { stream: true });
  }
  expect(output).toBe("ready\n");
  await send();
  receiver.stdin.end();
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) output += decoder.decode(chunk.value);
  expect(await receiver.exited).toBe(0);
  return JSON.parse(output.slice("ready\n".length)) as Record<string, string[]>;
}

/** Runs a sender to its natural end (it never calls exit) and returns its JSON results. */
async function runSender(command: string[], plan: object): Promise<Record<string, unknown>> {
  const proc = Bun.spawn([...command, JSON.stringify(plan)], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  track(proc.pid);
  const exited = await Promise.race([proc.exited, Bun.sleep(20_000).then(() => "still running")]);
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  expect({ exited, stderr }).toEqual({ exited: 0, stderr: "" });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const SENDERS = [
  { name: "bun", runtime: "bun", command: () => [BUN, SENDER] },
  { name: "deno", runtime: "deno", command: () => [...DENO_RUN, SENDER] },
  { name: "compiled binary", runtime: "bun", command: () => [compiled] },
];

describe.each(SENDERS)("Runtime.notify ($name)", ({ name, runtime, command }) => {
  test("sends exactly the datagrams asked for, to a path and to an abstract name", async () => {
    const id = `${process.pid}-${Math.random().toString(36).slice(2)}`;
    const path = join(dir, `notify-${id}.sock`);
    const longestPath = join(dir, `longest-${id}-`).padEnd(SUN_PATH_MAX, "p");
    const plan = {
      path,
      abstract: `@sluice-notify-${id}`,
      longestPath,
      longestAbstract: `@sluice-longest-${id}-`.padEnd(1 + SUN_PATH_MAX, "a"),
      missing: join(dir, "missing.sock"),
      notSocket: join(dir, "not-a-socket"),
      full: join(dir, `full-${id}.sock`),
    };
    writeFileSync(plan.notSocket, "");
    let results: Record<string, unknown> = {};
    const received = await receive(
      [plan.path, plan.abstract, plan.longestPath, plan.longestAbstract, plan.full],
      async () => void (results = await runSender(command(), plan)),
    );

    const { full, microsPerCall, ...rest } = results as { full: { sent: number; failed: number }; microsPerCall: number };
    expect(rest).toEqual({
      runtime,
      path: [true, true],
      abstract: [true, true],
      longestPath: true,
      longestAbstract: true,
      missing: false,
      notSocket: false,
      tooLongPath: false,
      tooLongAbstract: false,
      relative: false,
      vsock: false,
      emptyAbstract: false,
      emptyMessage: false,
      nulInMessage: false,
      newSockets: 1, // one socket, opened once and reused for every send
    });
    const { [plan.full]: fullQueue, ...exact } = received;
    expect(exact).toEqual({
      [plan.path]: ["READY=1\nSTATUS=hello", "STOPPING=1"],
      [plan.abstract]: ["READY=1\nSTATUS=hello", "STOPPING=1"],
      [plan.longestPath]: ["READY=1"],
      [plan.longestAbstract]: ["READY=1"],
    });
    // A full receive queue makes notify return false at once rather than block.
    expect(full.sent).toBeGreaterThan(0);
    expect(full.failed).toBeGreaterThan(0);
    expect(fullQueue).toEqual(Array(full.sent).fill("WATCHDOG=1"));
    console.log(`${name}: ${microsPerCall.toFixed(2)} µs per call; full queue: ${JSON.stringify(full)}`);
    expect(microsPerCall).toBeLessThan(100);
  }, 60_000);
});

test("Runtime.notify on Deno without --allow-ffi returns false and sends nothing", async () => {
  const path = join(dir, `no-ffi-${process.pid}.sock`);
  let results: Record<string, unknown> = {};
  const received = await receive([path], async () => {
    results = await runSender([DENO, "run", "--no-prompt", "--allow-read", SENDER], { mode: "minimal", path });
  });
  expect(results).toEqual({ runtime: "deno", path: false });
  expect(received).toEqual({ [path]: [] });
}, 60_000);
