import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectDocker } from "../agent/docker.js";
import { AGENT_LABEL, JOB_LABEL } from "../agent/sandbox/options.js";
import { run, startTestCluster, type TestCluster } from "./helpers/cluster.js";

/**
 * Reports what an earlier job would have left behind in this container: files
 * in /tmp besides the runner's own job directory, and a global flag.
 */
const FRESHNESS_PROBE = `
const fs = require("node:fs");
exports.main = () => {
  const others = fs.readdirSync("/tmp").filter((name) => !name.startsWith("labrun-job-"));
  fs.writeFileSync("/tmp/left-by-a-job", "x");
  const reused = globalThis.__labrunSeen === true;
  globalThis.__labrunSeen = true;
  return { others, reused };
};`;

/** The agent's warm (not yet job-labelled) containers. */
async function warmContainers(agentName: string): Promise<string[]> {
  const docker = await connectDocker();
  const list = await docker.listContainers({ all: true, filters: { label: [JOB_LABEL] } });
  return list
    .filter((c) => c.Labels[AGENT_LABEL] === agentName && c.Labels[JOB_LABEL] === "")
    .map((c) => c.Id);
}

describe("warm pool (one pre-booted container per job, never reused)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ agents: [2], agent: { warmPool: 2 } });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("runs every job in a fresh container: nothing of an earlier job is visible", async () => {
    const jobs = await Promise.all(
      Array.from({ length: 10 }, () => run(cluster.client, FRESHNESS_PROBE)),
    );
    for (const job of jobs) {
      expect(job.outcome).toMatchObject({ ok: true, result: { others: [], reused: false } });
    }
    const { warmRuns } = cluster.agents[0]?.stats ?? { warmRuns: 0 };
    // Slots free up faster than the pool refills, so some jobs boot cold; many must not.
    expect(warmRuns).toBeGreaterThanOrEqual(2);
  });

  it("boots a container of its own for a job whose limits differ from the pool's", async () => {
    const before = cluster.agents[0]?.stats.coldRuns ?? 0;
    const job = await run(cluster.client, "exports.main = () => 42", {
      limits: { memoryMb: 128 },
    });
    expect(job.outcome).toMatchObject({ ok: true, result: 42 });
    expect(cluster.agents[0]?.stats.coldRuns).toBe(before + 1);
  });

  it("replaces warm containers that die while idle, and jobs still succeed", async () => {
    const agent = cluster.agents[0];
    if (!agent) throw new Error("no agent");
    await waitFor(() => agent.stats.pool.idle === 2);
    const docker = await connectDocker();
    const victims = await warmContainers(agent.name);
    expect(victims.length).toBeGreaterThan(0);
    await Promise.all(
      victims.map((id) =>
        docker
          .getContainer(id)
          .kill()
          .catch(() => {}),
      ),
    );
    await waitFor(async () => {
      const now = await warmContainers(agent.name);
      return agent.stats.pool.idle === 2 && victims.every((id) => !now.includes(id));
    });
    const jobs = await Promise.all(
      [1, 2, 3].map((n) => run(cluster.client, `exports.main = () => ${n}`)),
    );
    expect(jobs.map((job) => job.outcome?.ok && job.outcome.result)).toEqual([1, 2, 3]);
  });

  it("removes a warm container whose job timed out or was cancelled", async () => {
    const timedOut = await run(cluster.client, "exports.main = () => { for (;;) {} }", {
      limits: { timeoutMs: 500 },
    });
    expect(timedOut.outcome).toMatchObject({ ok: false, error: { code: "TIMEOUT" } });
    const { id } = await cluster.client.submit({
      source: "exports.main = () => new Promise((resolve) => setTimeout(resolve, 60_000))",
    });
    await waitFor(async () => (await cluster.client.get(id)).state === "running");
    await cluster.client.cancel(id);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});

describe("warm pool off (--warm 0)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await startTestCluster({ agents: [1], agent: { warmPool: 0 } });
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("runs jobs cold and keeps no container booted ahead", async () => {
    const job = await run(cluster.client, "exports.main = () => 'cold'");
    expect(job.outcome).toMatchObject({ ok: true, result: "cold" });
    const agent = cluster.agents[0];
    expect(agent?.stats).toMatchObject({ warmRuns: 0, coldRuns: 1, pool: { idle: 0, booting: 0 } });
    expect(await warmContainers(agent?.name ?? "")).toEqual([]);
  });
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(100);
  }
}
