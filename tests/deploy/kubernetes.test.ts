/**
 * @module The Kubernetes deployment in deploy/kubernetes: every manifest validated offline
 * (unknown keys rejected), the stop budget checked by `sluice check` against the manifest's
 * own settings, and the pod lifecycle simulated in network namespaces: a "node" namespace
 * (kubelet, endpoints lag, clients: fixtures/kubernetes/node-sim.ts) and a "pod" namespace
 * (sluice as PID 1 of its own PID namespace, with the fixture app), joined by a veth pair.
 * The simulation uses the manifest's settings unscaled (shutdown delay, grace period, probe
 * periods, user); the endpoint lag (2 s) and the load (a few hundred keep-alive requests a
 * second, bounded) are the test's. It does not model the read-only root filesystem (the image
 * test, tests/deploy/image.test.ts, runs dist/rootfs that way). Needs root (CI has it) and
 * iproute2's `ip`; skipped otherwise.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { IDeployment } from "kubernetes-models/apps/v1/Deployment";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IProbe } from "kubernetes-models/v1/Probe";
import { parseAllDocuments } from "yaml";
import { track } from "../cleanup.ts";
import { BINARY, BUN, readLines, ROOT, tempDir } from "../harness.ts";
import type { Probe, SimConfig } from "./fixtures/kubernetes/node-sim.ts";
import { type Manifest, schemaErrors, validateManifests } from "./fixtures/kubernetes/validate-manifests.ts";

const DEPLOY_DIR = join(ROOT, "deploy/kubernetes");
const NODE_SIM = join(ROOT, "tests/deploy/fixtures/kubernetes/node-sim.ts");
const FIXTURE_APP = join(ROOT, "tests/fixtures/app.ts");

// ---- the manifests ------------------------------------------------------------------------

interface Loaded {
  file: string;
  manifest: Manifest;
}

/** Every document of every .yaml/.yml file in deploy/kubernetes (duplicate keys are errors). */
function loadManifests(): Loaded[] {
  const loaded: Loaded[] = [];
  for (const file of readdirSync(DEPLOY_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(DEPLOY_DIR, file), "utf8"), { uniqueKeys: true })) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join("; ")}`);
      const manifest = doc.toJS() as Manifest | null;
      if (manifest !== null) loaded.push({ file, manifest });
    }
  }
  return loaded;
}

const manifests = loadManifests();
const deployment = manifests.find((m) => m.manifest.kind === "Deployment")?.manifest as IDeployment | undefined;
if (!deployment) throw new Error("deploy/kubernetes has no Deployment");
const podSpec = deployment.spec!.template.spec!;
const container: IContainer = podSpec.containers.find((c) => c.name === "sluice") ?? podSpec.containers[0]!;

/** What the kubelet waits before SIGKILL, from the deletion on. */
const GRACE_SECONDS = podSpec.terminationGracePeriodSeconds ?? 30;
/** The native preStop sleep, if the manifest uses one; it counts against the grace period. */
const PRESTOP_SECONDS = container.lifecycle?.preStop?.sleep?.seconds ?? 0;

/** sluice's settings as the manifest gives them: flags (args before "--") and SLUICE_* (and other) variables. */
function sluiceSettings(c: IContainer): { flags: string[]; env: Record<string, string> } {
  const args = c.args ?? [];
  const end = args.indexOf("--");
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value === undefined) throw new Error(`env ${e.name}: only literal values are understood by this test`);
    env[e.name] = e.value;
  }
  return { flags: end >= 0 ? args.slice(0, end) : args, env };
}

const settings = sluiceSettings(container);

function portNumber(port: number | string): number {
  if (typeof port === "number") return port;
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`no container port named ${port}`);
  return named.containerPort;
}

/** A probe of the manifest as the simulated kubelet runs it (Kubernetes' defaults where unset). */
function probeOf(probe: IProbe | undefined, what: string): Probe {
  if (!probe?.httpGet) throw new Error(`the container has no httpGet ${what}`);
  return {
    path: probe.httpGet.path ?? "/",
    port: portNumber(probe.httpGet.port),
    periodMs: (probe.periodSeconds ?? 10) * 1000,
    timeoutMs: (probe.timeoutSeconds ?? 1) * 1000,
    failureThreshold: probe.failureThreshold ?? 3,
  };
}

/** The value of a sluice option as the manifest sets it: flag, else variable. */
function option(name: string): string | undefined {
  const i = settings.flags.findIndex((f) => f === `--${name}` || f.startsWith(`--${name}=`));
  if (i >= 0) return settings.flags[i]!.includes("=") ? settings.flags[i]!.split("=")[1] : settings.flags[i + 1];
  return settings.env[`SLUICE_${name.toUpperCase().replaceAll("-", "_")}`];
}

/** Runs `dist/sluice check` with the manifest's settings only (no other SLUICE_* from this machine). */
async function sluiceCheck(graceSeconds: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BINARY, "check", ...settings.flags, "--grace-period", `${graceSeconds}s`], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...settings.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  track(proc.pid);
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

describe("deploy/kubernetes manifests", () => {
  test("every manifest is valid for the Kubernetes API schemas, unknown keys included", async () => {
    expect(manifests.map((m) => m.manifest.kind).sort()).toEqual(["Deployment", "PodDisruptionBudget", "Service"]);
    const errors = await validateManifests(manifests.map((m) => m.manifest));
    const report = manifests.map((m, i) => ({ file: m.file, kind: m.manifest.kind, errors: errors[i] }));
    console.log(`validated offline: ${report.map((r) => `${r.file} (${r.kind}): ${r.errors!.length === 0 ? "ok" : r.errors!.join("; ")}`).join(", ")}`);
    expect(report.filter((r) => r.errors!.length > 0)).toEqual([]);

    // The Service and the PodDisruptionBudget select the Deployment's pods.
    const labels = deployment.spec!.template.metadata!.labels!;
    for (const kind of ["Service", "PodDisruptionBudget"]) {
      const spec = manifests.find((m) => m.manifest.kind === kind)!.manifest.spec as { selector: Record<string, unknown> };
      const selector = (kind === "Service" ? spec.selector : spec.selector.matchLabels) as Record<string, string>;
      expect(labels).toMatchObject(selector);
    }
  }, 60_000);

  test("negative controls: an unknown key, even nested, and a wrong type are rejected", async () => {
    const typo = structuredClone(deployment) as Manifest & IDeployment;
    const typoSpec = typo.spec!.template.spec! as unknown as Record<string, unknown>;
    typoSpec.terminationGracePeriodSecond = typoSpec.terminationGracePeriodSeconds;
    delete typoSpec.terminationGracePeriodSeconds;
    const nested = structuredClone(deployment) as Manifest & IDeployment;
    (nested.spec!.template.spec!.containers[0] as unknown as Record<string, unknown>).readinessprobe = { httpGet: { path: "/readyz", port: 9000 } };
    const wrongType = structuredClone(deployment) as Manifest & IDeployment;
    (wrongType.spec!.template.spec! as unknown as Record<string, unknown>).terminationGracePeriodSeconds = "30";

    // The package's schema validators alone accept the typo: they allow unknown keys...
    expect(await schemaErrors(typo)).toEqual([]);
    // ...the strict check does not.
    const [typoErrors, nestedErrors, typeErrors] = await validateManifests([typo, nested, wrongType]);
    console.log(`rejected: ${[typoErrors, nestedErrors, typeErrors].map((e) => e!.join(" | ")).join("\n          ")}`);
    expect(typoErrors!.join("\n")).toContain("'\"terminationGracePeriodSecond\"' does not exist in type 'IPodSpec'");
    expect(nestedErrors!.join("\n")).toContain("'\"readinessprobe\"' does not exist in type 'IContainer'");
    expect(typeErrors!.join("\n")).toContain("terminationGracePeriodSeconds must be integer");
  }, 60_000);

  test("the pod is hardened, probed on the admin port, and needs no shell to stop", () => {
    const pod = podSpec.securityContext!;
    const own = container.securityContext!;
    expect(own.runAsNonRoot ?? pod.runAsNonRoot).toBe(true);
    expect(own.runAsUser ?? pod.runAsUser).toBeGreaterThan(0);
    expect(own.readOnlyRootFilesystem).toBe(true);
    expect(own.allowPrivilegeEscalation).toBe(false);
    expect(own.capabilities?.drop).toEqual(["ALL"]);
    expect((own.seccompProfile ?? pod.seccompProfile)?.type).toBe("RuntimeDefault");
    expect(container.resources?.requests).toBeDefined();
    expect(container.resources?.limits?.memory).toBeDefined();
    // Service links would inject SLUICE_<SERVICE>_PORT variables that sluice reads as options.
    expect(podSpec.enableServiceLinks).toBe(false);

    // Probes reach the admin listener from the node: it must listen on every address.
    const admin = option("admin-listen");
    expect(admin).toMatch(/^0\.0\.0\.0:\d+$/);
    const adminPort = Number(admin!.split(":")[1]);
    expect(probeOf(container.startupProbe, "startupProbe")).toMatchObject({ path: "/readyz", port: adminPort });
    expect(probeOf(container.readinessProbe, "readinessProbe")).toMatchObject({ path: "/readyz", port: adminPort });
    expect(probeOf(container.livenessProbe, "livenessProbe")).toMatchObject({ path: "/livez", port: adminPort });
    expect(portNumber("http")).toBe(Number(option("http-port") ?? 8080));

    // A scratch image has no shell and no sleep binary: no exec hooks.
    expect(container.lifecycle?.preStop?.exec).toBeUndefined();
    // sluice's own --grace-period is what is left of the grace period after the preStop sleep.
    expect(option("grace-period")).toBe(`${GRACE_SECONDS - PRESTOP_SECONDS}s`);
  });

  test("sluice check: the manifest's stop budget fits terminationGracePeriodSeconds (minus preStop), with a margin", async () => {
    const { code, stdout, stderr } = await sluiceCheck(GRACE_SECONDS - PRESTOP_SECONDS);
    console.log(`terminationGracePeriodSeconds ${GRACE_SECONDS}, preStop sleep ${PRESTOP_SECONDS}s:\n${stdout}${stderr}`);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const spare = /fits, (\d+(?:\.\d+)?)s to spare/.exec(stdout);
    expect(spare).not.toBeNull();
    expect(Number(spare![1])).toBeGreaterThanOrEqual(2);
  }, 30_000);

  test("sluice check fails when the grace period is too small for the same settings", async () => {
    const total = Number(/total\s+(\d+(?:\.\d+)?)s/.exec((await sluiceCheck(GRACE_SECONDS - PRESTOP_SECONDS)).stdout)?.[1]);
    expect(total).toBeGreaterThan(0);
    const { code, stdout, stderr } = await sluiceCheck(Math.ceil(total) - 1);
    console.log(`with --grace-period ${Math.ceil(total) - 1}s: exit ${code}: ${stderr.trim()}`);
    expect(code).not.toBe(0);
    expect(stdout).toContain("DOES NOT FIT");
  }, 30_000);
});

// ---- the lifecycle simulation -------------------------------------------------------------

const isRoot = process.getuid?.() === 0;
const NODE_NS = `slk8s-node-${process.pid}`;
const POD_NS = `slk8s-pod-${process.pid}`;
const NODE_VETH = `slk8s${process.pid}n`;
const POD_VETH = `slk8s${process.pid}p`;
// TEST-NET-1 (RFC 5737): documentation addresses, never a real host; they exist only in the
// two namespaces made here, and only those namespaces send traffic to them.
const NODE_IP = "192.0.2.1";
const POD_IP = "192.0.2.2";

function ip(...args: string[]): void {
  const result = Bun.spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`ip ${args.join(" ")} failed: ${result.stderr.toString().trim()}`);
}

function deleteNamespaces(names: string[]): void {
  for (const name of names) Bun.spawnSync(["ip", "netns", "del", name], { stdout: "ignore", stderr: "ignore" });
}

/** Namespaces this test made in an earlier run that was killed before its cleanup. */
function staleNamespaces(): string[] {
  const list = Bun.spawnSync(["ip", "netns", "list"], { stdout: "pipe" }).stdout.toString();
  return [...list.matchAll(/^(slk8s-(?:node|pod)-(\d+))\b/gm)]
    .filter((m) => {
      try {
        process.kill(Number(m[2]), 0);
        return false; // its test run is still going
      } catch {
        return true;
      }
    })
    .map((m) => m[1]!);
}

/** The manifest's user for the container, when that user can reach the binary and the app here. */
function containerUser(): { uid?: number; gid?: number } {
  const uid = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser;
  const gid = container.securityContext?.runAsGroup ?? podSpec.securityContext?.runAsGroup ?? uid;
  if (uid === undefined) return {};
  const probe = Bun.spawnSync(["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "test", "-x", BINARY, "-a", "-x", BUN, "-a", "-r", FIXTURE_APP]);
  if (probe.exitCode === 0) return { uid, gid: gid! };
  console.log(`note: uid ${uid} cannot reach ${BINARY} or the app here; the container runs as root`);
  return {};
}

interface SimResult {
  exitCode: number;
  uid: number;
  killedAtGrace: boolean;
  graceMs: number;
  lagMs: number;
  preStopSleepMs: number;
  sigtermAfterDeletionMs: number;
  exitAfterDeletionMs: number;
  exitAfterSigtermMs: number;
  sent: number;
  toPod: number;
  toOther: number;
  ok: number;
  podSentAfterTerm: number;
  podOkAfterTerm: number;
  failed: number;
  failures: Record<"http-error" | "refused" | "reset" | "timeout" | "other", number>;
  failureSamples: string[];
  firstFailureAfterTermMs?: number;
  lastPodOkAfterTermMs?: number;
  probes: { startupAttempts: number; readinessFailuresAfterDeletion: number; livenessFailures: number; livenessProbesDuringStop: number };
  shutdown: Record<string, unknown> | null;
}

interface Scenario {
  name: string;
  /** Flags added after the manifest's (flags win over its SLUICE_* variables). */
  extraFlags?: string[];
  /** Replaces the manifest's preStop sleep. */
  preStopSleepSeconds?: number;
  /** Replaces terminationGracePeriodSeconds for the simulated kubelet only. */
  graceSeconds?: number;
  lagMs: number;
}

/** Runs the node simulation for one pod lifetime; returns its figures (and prints them). */
async function simulate(scenario: Scenario): Promise<SimResult> {
  const logFile = join(tempDir(), "node-sim.log");
  const user = containerUser();
  const config: SimConfig = {
    podNetns: POD_NS,
    podIp: POD_IP,
    httpPort: Number(option("http-port") ?? 8080),
    container: {
      argv: [BINARY, ...settings.flags, ...(scenario.extraFlags ?? []), "--", BUN, FIXTURE_APP],
      env: { PATH: "/usr/bin:/bin", ...settings.env },
      cwd: ROOT,
      ...user,
    },
    probes: {
      startup: probeOf(container.startupProbe, "startupProbe"),
      readiness: probeOf(container.readinessProbe, "readinessProbe"),
      liveness: probeOf(container.livenessProbe, "livenessProbe"),
    },
    preStopSleepMs: (scenario.preStopSleepSeconds ?? PRESTOP_SECONDS) * 1000,
    graceMs: (scenario.graceSeconds ?? GRACE_SECONDS) * 1000,
    lagMs: scenario.lagMs,
    warmupMs: 1500,
    tailMs: 1000,
    workers: 6,
    maxRequests: 20_000,
    slowWorkers: 2,
    slowMs: 1500,
    logFile,
    deadlineMs: 90_000,
  };
  // The simulation runs in the node namespace with a bare environment (no proxy variables).
  const proc = Bun.spawn(["ip", "netns", "exec", NODE_NS, BUN, NODE_SIM, JSON.stringify(config)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  track(proc.pid);
  let result: SimResult | undefined;
  let error = "";
  let stderr = "";
  const reading = Promise.all([
    readLines(proc.stdout, (line) => {
      const event = JSON.parse(line) as { type: string; pid?: number; message?: string };
      if (event.type === "pid") track(event.pid!);
      else if (event.type === "result") result = event as unknown as SimResult;
      else if (event.type === "error") error = event.message ?? "";
    }),
    readLines(proc.stderr, (line) => (stderr += `${line}\n`)),
  ]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const code = await Promise.race([
    proc.exited,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the node simulation did not finish within 100s")), 100_000))),
  ]).finally(() => clearTimeout(timer));
  await reading;
  if (code !== 0 || !result) {
    const tail = readFileSync(logFile, "utf8").split("\n").slice(-30).join("\n");
    throw new Error(`node simulation failed (exit ${code}): ${error}\n${stderr}\nlast lines of ${logFile}:\n${tail}`);
  }
  const phases = (result.shutdown?.phases ?? {}) as Record<string, number>;
  console.log(
    [
      `[${scenario.name}]`,
      `  requests sent ${result.sent} (to the pod ${result.toPod}, to the other replica ${result.toOther}), ok ${result.ok}, failed ${result.failed}`,
      `  failures: refused ${result.failures.refused}, reset ${result.failures.reset}, timeout ${result.failures.timeout}, http error ${result.failures["http-error"]}, other ${result.failures.other}`,
      `  endpoint lag ${result.lagMs}ms, preStop sleep ${result.preStopSleepMs}ms; routed to the pod after SIGTERM ${result.podSentAfterTerm}, served ${result.podOkAfterTerm}` +
      (result.firstFailureAfterTermMs !== undefined ? `, first failure ${result.firstFailureAfterTermMs}ms after SIGTERM` : ""),
      `  SIGTERM ${result.sigtermAfterDeletionMs}ms after deletion to sluice (PID 1 of its PID namespace, uid ${result.uid}); sluice exited ${result.exitCode} after ${result.exitAfterDeletionMs}ms (grace ${result.graceMs}ms, SIGKILL at grace: ${result.killedAtGrace})`,
      `  sluice phases ${JSON.stringify(phases)}, drained ${result.shutdown?.drained}, aborted ${result.shutdown?.aborted}`,
      `  probes: startup attempts ${result.probes.startupAttempts}, readiness failures after deletion ${result.probes.readinessFailuresAfterDeletion}, liveness failures ${result.probes.livenessFailures}`,
      ...(result.failureSamples.length ? [`  sample failures: ${result.failureSamples.join(" | ")}`] : []),
    ].join("\n"),
  );
  expect(result.uid).toBe(user.uid ?? 0);
  return result;
}

describe.skipIf(!isRoot)("pod lifecycle in network namespaces (kubelet, endpoints lag, clients)", () => {
  const removeNamespaces = () => deleteNamespaces([NODE_NS, POD_NS]);
  beforeAll(() => {
    deleteNamespaces(staleNamespaces());
    // A run cut short (Ctrl-C, CI timeout) skips afterAll; tests/cleanup.ts then exits, and this runs.
    process.on("exit", removeNamespaces);
    try {
      ip("netns", "add", NODE_NS);
      ip("netns", "add", POD_NS);
      // Both ends are created inside their namespaces: the host never has these addresses.
      ip("link", "add", NODE_VETH, "netns", NODE_NS, "type", "veth", "peer", "name", POD_VETH, "netns", POD_NS);
      ip("-n", NODE_NS, "addr", "add", `${NODE_IP}/24`, "dev", NODE_VETH);
      ip("-n", POD_NS, "addr", "add", `${POD_IP}/24`, "dev", POD_VETH);
      for (const [ns, dev] of [[NODE_NS, NODE_VETH], [POD_NS, POD_VETH]] as const) {
        ip("-n", ns, "link", "set", "lo", "up");
        ip("-n", ns, "link", "set", dev, "up");
      }
    } catch (error) {
      removeNamespaces();
      throw error;
    }
  });

  // The veth pair goes with its namespaces.
  afterAll(() => {
    removeNamespaces();
    process.off("exit", removeNamespaces);
  });

  // Endpoint removal usually reaches kube-proxy in about a second; 2 s is a slow cluster.
  const LAG_MS = 2000;

  test("with the manifest's settings: no failed request, and sluice exits 0 well before the grace period", async () => {
    const result = await simulate({ name: `manifest: shutdown-delay ${option("shutdown-delay")}, preStop ${PRESTOP_SECONDS}s`, lagMs: LAG_MS });
    expect(result.sent).toBeGreaterThan(100);
    expect(result.podSentAfterTerm).toBeGreaterThan(0); // the lag really sent requests to the stopping pod
    expect(result.podOkAfterTerm).toBe(result.podSentAfterTerm);
    expect(result.toOther).toBeGreaterThan(0); // and the load went on after the pod left
    expect(result.failed).toBe(0);
    expect(result.exitCode).toBe(0);
    expect(result.killedAtGrace).toBe(false);
    expect(result.exitAfterDeletionMs).toBeLessThan(result.graceMs);
    expect(result.probes.livenessFailures).toBe(0);
    expect(result.shutdown).toMatchObject({ exitCode: 0, aborted: 0, killed: 0 });
  }, 120_000);

  test("with --shutdown-delay 0 and no preStop, requests routed during the endpoint lag are refused", async () => {
    const result = await simulate({ name: "shutdown-delay 0, no preStop", extraFlags: ["--shutdown-delay", "0"], preStopSleepSeconds: 0, lagMs: LAG_MS });
    expect(result.podSentAfterTerm).toBeGreaterThan(0);
    expect(result.failures.refused).toBeGreaterThan(0);
    expect(result.failed).toBeGreaterThanOrEqual(result.failures.refused);
    // sluice itself still stopped cleanly: the loss is the orchestration's, not the drain's.
    expect(result.exitCode).toBe(0);
    expect(result.killedAtGrace).toBe(false);
  }, 120_000);

  test("the alternative, a native preStop sleep with --shutdown-delay 0: no failure either, SIGTERM comes later", async () => {
    const sleepSeconds = Number.parseFloat(option("shutdown-delay") ?? "5");
    const result = await simulate({
      name: `native preStop sleep ${sleepSeconds}s, shutdown-delay 0`,
      extraFlags: ["--shutdown-delay", "0", "--grace-period", `${GRACE_SECONDS - sleepSeconds}s`],
      preStopSleepSeconds: sleepSeconds,
      lagMs: LAG_MS,
    });
    expect(result.sigtermAfterDeletionMs).toBeGreaterThanOrEqual(sleepSeconds * 1000);
    expect(result.failed).toBe(0);
    expect(result.exitCode).toBe(0);
    expect(result.exitAfterDeletionMs).toBeLessThan(result.graceMs);
  }, 120_000);

  test("control: a grace period shorter than the stop budget ends in the kubelet's SIGKILL", async () => {
    const result = await simulate({ name: "terminationGracePeriodSeconds 3 (kubelet only)", graceSeconds: 3, lagMs: LAG_MS });
    expect(result.killedAtGrace).toBe(true);
    expect(result.exitCode).not.toBe(0);
    expect(result.shutdown).toBeNull(); // no "shutdown complete": sluice never finished its stop
    expect(result.exitAfterDeletionMs).toBeGreaterThanOrEqual(3000);
  }, 120_000);
});
