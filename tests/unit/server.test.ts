/**
 * @module sluice's Server on the Bun adapter with real sockets, for what it does itself
 * around a pipeline: a pipeline that fails answers 500 without its error's text, an
 * answer to HEAD goes out without a body and still ends its exchange, and an answer that
 * comes after the drain cut its connection is recorded as the 444 its client saw.
 */

import { afterEach, describe, expect, test } from "bun:test";
import type { Pipeline } from "../../src/app.ts";
import type { Exchange } from "../../src/exchange.ts";
import { flushLogging, setupLogging } from "../../src/log.ts";
import { LineOutput } from "../../src/output.ts";
import { bunRuntime } from "../../src/runtime/bun.ts";
import { Server } from "../../src/server.ts";
import { until } from "../harness.ts";

let server: Server | undefined;
afterEach(async () => {
  server?.closeListener();
  await server?.drain(2000, new AbortController().signal);
  server = undefined;
});

/** A server whose pipeline answers with `handle`; `ended` collects the exchanges as they end. */
async function serve(handle: Pipeline["handle"]) {
  const ended: Exchange[] = [];
  server = new Server(bunRuntime, { handle, onEnd: [(exchange) => ended.push(exchange)], release() {} });
  await server.start("127.0.0.1", 0);
  return { url: `http://127.0.0.1:${server.port}`, ended };
}

const SECRET = "internal detail: /srv/app/secret.key";

describe("Server", () => {
  test("a pipeline that throws answers 500 without the error's text, and logs it", async () => {
    // sluice's own logging, into memory instead of stdout.
    const written: string[] = [];
    const write = (_fd: 1 | 2, bytes: Uint8Array): Promise<void> => {
      written.push(new TextDecoder().decode(bytes));
      return Promise.resolve();
    };
    const out = new LineOutput({ ...bunRuntime, write }, 1);
    await setupLogging(out, { level: "info", format: "json" });
    try {
      const { url, ended } = await serve((exchange) => {
        exchange.requestId = "r-throws";
        throw new Error(SECRET);
      });
      const response = await fetch(`${url}/x?q=1`);
      expect(response.status).toBe(500);
      expect(await response.text()).toBe("Internal Server Error\n");
      expect(response.headers.get("x-request-id")).toBe("r-throws");
      await until(() => ended.length === 1, 10_000, "the exchange's end");
      expect(ended[0]!.status).toBe(500);
      expect(server!.inFlight).toBe(0);
    } finally {
      await flushLogging(out);
    }
    const records = written.join("").split("\n").filter(Boolean).map((line) => JSON.parse(line));
    expect(records).toContainEqual(expect.objectContaining({
      level: "ERROR",
      event: "request.failed",
      method: "GET",
      path: "/x",
      requestId: "r-throws",
      error: SECRET,
    }));
  });

  test("a pipeline that rejects answers 500 without the error's text", async () => {
    const { url, ended } = await serve(() => Promise.reject(new Error(SECRET)));
    const response = await fetch(`${url}/x`);
    expect(response.status).toBe(500);
    const body = await response.text();
    expect(body).toBe("Internal Server Error\n");
    expect(body).not.toContain("secret");
    await until(() => ended.length === 1, 10_000, "the exchange's end");
  });

  test("an answer to HEAD with a streamed body goes out bodiless and its exchange ends", async () => {
    let cancelled = false;
    const { url, ended } = await serve(() =>
      new Response(
        new ReadableStream({
          pull(controller) {
            controller.enqueue(new TextEncoder().encode("never read\n"));
          },
          cancel() {
            cancelled = true;
          },
        }),
        { headers: { "content-type": "text/plain" } },
      )
    );
    const response = await fetch(`${url}/x`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain");
    expect(await response.text()).toBe("");
    await until(() => ended.length === 1, 10_000, "the exchange's end");
    expect(ended[0]!.outcome).toBe("complete");
    expect(server!.inFlight).toBe(0);
    await until(() => cancelled, 10_000, "the unread body's cancel");
  });

  test("an answer that comes after the drain cut the connections is recorded as 444: the client got none", async () => {
    // A pipeline slow to give up: it answers 503 only 800 ms after its abort, past the close grace.
    const { url, ended } = await serve((exchange) =>
      new Promise<Response>((resolve) => {
        exchange.signal.addEventListener("abort", () => setTimeout(() => resolve(new Response("late\n", { status: 503 })), 800));
      }));
    const seen = fetch(`${url}/x`).then((r) => r.status).catch(() => "no response");
    await until(() => server!.inFlight === 1, 10_000, "the request in flight");
    server!.closeListener();
    expect(await server!.drain(100, new AbortController().signal)).toEqual({ drained: 0, aborted: 1, closed: 0 });
    server = undefined; // drained and closed already
    expect(await seen).toBe("no response");
    await until(() => ended.length === 1, 10_000, "the exchange's end");
    expect(ended[0]).toMatchObject({ status: 444, outcome: "aborted" });
  });
});
