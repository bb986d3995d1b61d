import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDocker } from "../agent/docker.js";
import { startAgent } from "../agent/main.js";
import { AGENT_LABEL, JOB_LABEL } from "../agent/sandbox/options.js";
import { run, startTestCluster, type TestCluster, testLogger } from "./helpers/cluster.js";

/** What the container was given, read from inside: cgroup v1 or v2 files, and /tmp's size. */
const READ_OWN_LIMITS = `const fs = require("fs");
const first = (...paths) => { for (const p of paths) { try { return fs.readFileSync(p, "utf8").trim(); } catch {} } return null; };
exports.main = () => {
  const tmp = fs.statfsSync("/tmp");
  return {
    pids: first("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
    memory: first("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
    tmpBytes: tmp.blocks * tmp.bsize,
  };
};`;

const SYMLINK_IN_TMP = `const fs = require("fs");
exports.main = () => { fs.writeFileSync("/tmp/a", "x"); fs.symlinkSync("/tmp/a", "/tmp/b"); return fs.readlinkSync("/tmp/b"); };`;

const MiB = 1024 * 1024;

describe.concurrent("per-job limits, over the lab's defaults", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // The lab's default: 96 processes. Warm containers are booted with it.
    cluster = await startTestCluster({
      agents: [3],
      coordinator: { defaultLimits: { pids: 96 } },
    });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("gives a job without limits the lab's defaults", async () => {
    const job = await run(cluster.client, READ_OWN_LIMITS);
    expect(job.limits).toMatchObject({ pids: 96, memoryMb: 256, tmpfsMb: 64 });
    expect(job.outcome).toMatchObject({
      ok: true,
      result: { pids: "96", memory: String(256 * MiB), tmpBytes: 64 * MiB },
    });
  });

  it("boots its warm containers with the lab's defaults, so such jobs find one", async () => {
    const agent = cluster.agents[0];
    const deadline = Date.now() + 30_000;
    while ((agent?.stats.pool.idle ?? 0) === 0 && Date.now() < deadline) await sleep(100);
    const docker = await connectDocker();
    const warm = await docker.listContainers({
      filters: { label: [`${AGENT_LABEL}=${agent?.name}`, `${JOB_LABEL}=`] },
    });
    expect(warm.length).toBeGreaterThan(0);
    const inspected = await docker.getContainer(warm[0]?.Id ?? "").inspect();
    expect(inspected.HostConfig.PidsLimit).toBe(96);
  });

  it("runs a job in a container with its own pids, memory and /tmp limits", async () => {
    const job = await run(cluster.client, READ_OWN_LIMITS, {
      limits: { pids: 40, memoryMb: 200, tmpfsMb: 8 },
    });
    expect(job.outcome).toMatchObject({
      ok: true,
      result: { pids: "40", memory: String(200 * MiB), tmpBytes: 8 * MiB },
    });
  });

  it("fails a write past a 1 MiB /tmp with ENOSPC, as the program's RUNTIME_ERROR", async () => {
    const job = await run(
      cluster.client,
      `exports.main = () => require("fs").writeFileSync("/tmp/fill", Buffer.alloc(2 << 20, 1));`,
      { limits: { tmpfsMb: 1 } },
    );
    expect(job.outcome).toMatchObject({ ok: false, error: { code: "RUNTIME_ERROR" } });
    expect(job.outcome?.ok === false && job.outcome.error.message).toContain("ENOSPC");
  });

  it("keeps only the job's logBytes of its output, counting the rest", async () => {
    const job = await run(
      cluster.client,
      `exports.main = () => { process.stdout.write("y".repeat(5000)); return "ok"; };`,
      { limits: { logBytes: 1024 } },
    );
    expect(job.outcome).toMatchObject({ ok: true, result: "ok" });
    expect(job.outcome?.logs).toBe("y".repeat(1024));
    expect(job.outcome?.stats).toMatchObject({ logBytes: 5000, logsTruncated: true });
  });

  it("fails a result larger than the job's resultBytes with OUTPUT_TOO_LARGE", async () => {
    const source = `exports.main = () => "r".repeat(4000);`;
    const small = await run(cluster.client, source, { limits: { resultBytes: 2048 } });
    expect(small.outcome).toMatchObject({
      ok: false,
      error: {
        code: "OUTPUT_TOO_LARGE",
        message: "the program produced a result larger than 2 KiB",
      },
    });
    const roomy = await run(cluster.client, source, { limits: { resultBytes: 8192 } });
    expect(roomy.outcome).toMatchObject({ ok: true, result: "r".repeat(4000) });
  });

  it("lets a program make a symlink in its own /tmp under the engine's seccomp profile", async () => {
    const job = await run(cluster.client, SYMLINK_IN_TMP);
    expect(job.outcome).toMatchObject({ ok: true, result: "/tmp/a" });
  });
});

describe("an agent's bounds: maxima, whole-agent capacity, seccomp profile", () => {
  let cluster: TestCluster;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "labrun-seccomp-"));
    const profile = join(dir, "deny-symlink.json");
    // A test profile: everything allowed but symlink(at), which fails with EPERM.
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [{ names: ["symlink", "symlinkat"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
      }),
    );
    cluster = await startTestCluster({ agents: [] });
    await cluster.addAgent(3, {
      maxLimits: { pids: 128 },
      capacity: { cpus: 1 },
      seccompProfile: profile,
    });
  });
  afterAll(async () => {
    await cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("applies its seccomp profile to every job container", async () => {
    const job = await run(cluster.client, SYMLINK_IN_TMP);
    expect(job.outcome).toMatchObject({ ok: false, error: { code: "RUNTIME_ERROR" } });
    expect(job.outcome?.ok === false && job.outcome.error.message).toContain("EPERM");
  });

  it("is never leased a job past its maximum, which stays queued while others run", async () => {
    const { id } = await cluster.client.submit({
      source: "exports.main = () => 1",
      limits: { pids: 256 },
    });
    const within = await run(cluster.client, "exports.main = () => 2", { limits: { pids: 128 } });
    expect(within.outcome).toMatchObject({ ok: true, result: 2 });
    await sleep(500);
    expect((await cluster.client.get(id)).state).toBe("queued");
    await cluster.client.cancel(id);
  });

  it("runs jobs of 1 CPU one at a time on a 1-CPU agent, although it has 3 slots", async () => {
    const source = `exports.main = async () => { const start = Date.now(); await new Promise((r) => setTimeout(r, 600)); return [start, Date.now()]; };`;
    const jobs = await Promise.all(
      [1, 2, 3].map(() => run(cluster.client, source, { limits: { cpus: 1 } })),
    );
    const spans = jobs
      .map((job) => (job.outcome?.ok ? (job.outcome.result as [number, number]) : [0, 0]))
      .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0));
    expect(jobs.every((job) => job.state === "succeeded")).toBe(true);
    for (let i = 1; i < spans.length; i++) {
      expect(spans[i]?.[0], "a job started before the previous one ended").toBeGreaterThanOrEqual(
        spans[i - 1]?.[1] ?? Number.POSITIVE_INFINITY,
      );
    }
  });

  it("runs two jobs of half a CPU side by side on the same agent", async () => {
    const source = `exports.main = async () => { const start = Date.now(); await new Promise((r) => setTimeout(r, 1500)); return [start, Date.now()]; };`;
    const jobs = await Promise.all(
      [1, 2].map(() => run(cluster.client, source, { limits: { cpus: 0.5 } })),
    );
    const [a, b] = jobs.map((job) => (job.outcome?.ok ? (job.outcome.result as number[]) : []));
    expect((a?.[0] ?? 0) < (b?.[1] ?? 0) && (b?.[0] ?? 0) < (a?.[1] ?? 0)).toBe(true);
  });
});

describe("agent hardening settings it cannot use", () => {
  const join_ = { server: "http://127.0.0.1:9", token: "unused" };

  it("refuses to start with an OCI runtime the engine does not have", async () => {
    await expect(startAgent({ ...join_, runtime: "no-such-runtime" }, testLogger)).rejects.toThrow(
      /--runtime: the Docker engine has no runtime "no-such-runtime" \(it has: .*runc/,
    );
  });

  it("refuses a seccomp profile that is missing, not JSON, or not a profile", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrun-seccomp-"));
    try {
      const notJson = join(dir, "not.json");
      writeFileSync(notJson, "{");
      const unconfined = join(dir, "unconfined.json");
      writeFileSync(unconfined, '"unconfined"');
      for (const [path, message] of [
        [join(dir, "missing.json"), /cannot read .*ENOENT/],
        [notJson, /is not JSON/],
        [unconfined, /is not a seccomp profile/],
      ] as const) {
        await expect(
          startAgent({ ...join_, seccompProfile: path }, testLogger),
          path,
        ).rejects.toMatchObject({ name: "AgentSettingsError", message });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
