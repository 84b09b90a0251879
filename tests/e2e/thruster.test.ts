/**
 * @module Replacing basecamp/thruster: its variables, as a Rails Dockerfile sets them for
 * `thrust`, configure sluice with nothing else given (on the binary and under Deno).
 */

import { describe, expect, test } from "bun:test";
import { freePort, startSluice, TARGETS } from "../harness.ts";

describe.each(TARGETS)("thruster's variables ($name)", (target) => {
  test("HTTP_PORT, THRUSTER_TARGET_PORT and LOG_REQUESTS take effect; THRUSTER_DEBUG=false is no error", async () => {
    const [http, app] = [freePort(), freePort()];
    const sluice = await startSluice(target, {
      args: ["--shutdown-delay", "0"],
      // Booleans as thruster reads them (Go's ParseBool): "F" is false, THRUSTER_DEBUG=false is info.
      env: { HTTP_PORT: String(http), THRUSTER_TARGET_PORT: String(app), LOG_REQUESTS: "F", THRUSTER_DEBUG: "false" },
      ports: { http, target: app },
    });
    const response = await fetch(`${sluice.url}/hello`);
    expect(response.status).toBe(200);
    // The app got TARGET_PORT as its PORT.
    const env = (await (await fetch(`http://127.0.0.1:${app}/env`)).json()) as Record<string, string>;
    expect(env.PORT).toBe(String(app));
    sluice.signal("SIGTERM");
    expect(await sluice.exitCode()).toBe(0);
    expect(sluice.events("access")).toHaveLength(0); // LOG_REQUESTS=F
  }, 60_000);
});
