/**
 * @module A flood of connections past sluice's open-file limit: sluice keeps running, its
 * child stays its own, and it serves again once the flood is gone.
 */

import { describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { alive, openFds, startSluice, TARGETS, until } from "../harness.ts";

/** Opens `count` connections that send nothing; those refused or reset are left out. */
async function flood(port: number, count: number): Promise<Socket[]> {
  const opened = await Promise.all(Array.from({ length: count }, () =>
    new Promise<Socket | undefined>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port });
      socket.on("connect", () => resolve(socket));
      socket.on("error", () => resolve(undefined));
    })));
  return opened.filter((socket) => socket !== undefined);
}

for (const target of TARGETS) {
  describe(`open-file limit (${target.name})`, () => {
    test("connections past the open-file limit do not end sluice; it serves again when they are gone", async () => {
      const sluice = await startSluice(target, { args: ["--shutdown-delay", "0"] });
      const pid = sluice.proc.pid;
      const limit = openFds(pid) + 40;
      expect(Bun.spawnSync(["prlimit", `--pid=${pid}`, `--nofile=${limit}:${limit}`]).exitCode).toBe(0);
      const sockets = await flood(sluice.httpPort, 200);
      try {
        // Deno's accept loop ends at the first EMFILE (runtime notes): sluice listens again.
        if (target.name === "deno") await sluice.waitFor((r) => r.event === "listener.failed", 30_000);
        else await until(() => openFds(pid) >= limit - 2, 30_000, "sluice to reach its open-file limit");
        expect(alive(pid)).toBe(true);
      } finally {
        for (const socket of sockets) socket.destroy();
      }
      await until(async () => {
        try {
          return (await fetch(`${sluice.url}/`)).status === 200;
        } catch {
          return false; // refused while the listener is being opened again
        }
      }, 30_000, "sluice to serve again");
      expect(alive(sluice.childPid!)).toBe(true);
      sluice.signal("SIGTERM");
      expect(await sluice.exitCode()).toBe(0);
    }, 90_000);
  });
}
