/**
 * @module An app whose keep-alive timeout is shorter than sluice's pool keeps idle connections
 * (tests/fixtures/short-keepalive-app.py: 1 s, as gunicorn's threaded workers keep theirs 2 s):
 * a request sent on a pooled connection just as the app closes it is lost, and a POST, which
 * sluice may not send twice, would get 502. sluice learns the app's timeout from the first idle
 * connection the app closes (or from the first request lost so) and does not reuse one idle that
 * long again.
 */

import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, startSluice, TARGETS } from "../harness.ts";

const APP = ["python3", join(ROOT, "tests/fixtures/short-keepalive-app.py")];

describe.each(TARGETS)("upstream keep-alive shorter than the pool's ($name)", (target) => {
  test("POSTs spaced just under the app's keep-alive timeout are all answered, once each", async () => {
    const sluice = await startSluice(target, { child: APP });
    const body = "x".repeat(1000);
    const post = async () => {
      const response = await fetch(`${sluice.url}/echo`, { method: "POST", body });
      return `${response.status} ${await response.text()}`;
    };
    expect(await post()).toBe("200 1000");
    await Bun.sleep(1500); // the app closes the pooled connection after 1 s, idle
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) {
      answers.push(await post());
      await Bun.sleep(900); // the app looks at the connection every 0.2 s: a request now arrives after its last look
    }
    expect(answers).toEqual(Array(6).fill("200 1000"));
    const posts = await fetch(`${sluice.url}/posts`);
    expect(await posts.text()).toBe("7");
    expect(sluice.events("access").filter((r) => r.status === 502)).toEqual([]);
  }, 60_000);

  test("a POST lost as the app closed its connection is the last: the next ones go on new connections", async () => {
    const sluice = await startSluice(target, { child: APP });
    const body = "y".repeat(2000);
    const answers: string[] = [];
    for (let i = 0; i < 7; i++) {
      const response = await fetch(`${sluice.url}/echo`, { method: "POST", body });
      answers.push(`${response.status} ${await response.text()}`);
      await Bun.sleep(900);
    }
    // The first reuse is lost (the app may have acted on a POST: 502, as the README says); it
    // tells sluice how long the app keeps connections, and the rest are answered.
    expect(answers[0]).toBe("200 2000");
    expect(answers.slice(2)).toEqual(Array(5).fill("200 2000"));
    const posts = await fetch(`${sluice.url}/posts`);
    expect(Number(await posts.text())).toBe(answers.filter((a) => a.startsWith("200")).length);
  }, 60_000);

  test("gunicorn's threaded workers' 2 s: not one POST spaced just under it is lost, the first included", async () => {
    const sluice = await startSluice(target, { child: APP, env: { KEEP_ALIVE: "2" } });
    const answers: string[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${sluice.url}/echo`, { method: "POST", body: "z".repeat(3000) });
      answers.push(`${response.status} ${await response.text()}`);
      await Bun.sleep(1900);
    }
    expect(answers).toEqual(Array(4).fill("200 3000"));
    expect(await (await fetch(`${sluice.url}/posts`)).text()).toBe("4");
  }, 60_000);
});
