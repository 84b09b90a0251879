/**
 * @module Replacing basecamp/thruster: its variables, as a Rails Dockerfile sets them for
 * `thrust`, configure sluice with nothing else given (on the binary and under Deno).
 */

import { describe, expect, test } from "bun:test";
import { envName, OPTIONS } from "../../src/config.ts";
import { freePort, runSluice, startSluice, TARGETS } from "../harness.ts";

/** Variables that would change what these tests see, removed from the inherited environment. */
const CLEAN_ENV = Object.fromEntries(Object.values(OPTIONS).map((spec) => [envName(spec.name), ""]));

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

  test("numbers are read as thruster reads them (Go's Atoi): a unit is refused, or ignored unprefixed; a plus sign is fine", async () => {
    // THRUSTER_CACHE_SIZE=512MB was a 512 MB cache (thruster ignores it), and HTTP_PORT=+3000 was ignored (thruster takes it).
    const run = (env: Record<string, string>) => runSluice(target, ["check"], { ...CLEAN_ENV, ...env });
    const unit = await run({ THRUSTER_CACHE_SIZE: "512MB" });
    expect(unit.code).toBe(78);
    expect(unit.stderr).toBe(`sluice: Cannot parse THRUSTER_CACHE_SIZE: expected a whole number as thruster reads it (Go's Atoi), without a unit; current value is "512MB"\n`);
    const plus = await run({ HTTP_PORT: "+3000" });
    expect(plus.code).toBe(78);
    expect(plus.stderr).toContain("HTTP_PORT and the default of --target-port are both 3000");
    expect((await run({ CACHE_SIZE: "512MB", HTTP_IDLE_TIMEOUT: "30s" })).code).toBe(0);
  }, 60_000);
});
