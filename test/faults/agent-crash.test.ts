import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../protocol/index.js";
import { jobsNow, listAll, SLEEPER, submitMany, tally } from "./helpers/jobs.js";
import { LEASE_TTL_MS, ProcessCluster, tail, waitFor } from "./helpers/processes.js";
import { recordScenario, tallyFigures } from "./helpers/report.js";

// Scenario 2: kill -9 an agent while it runs jobs. Its leases expire and the
// other agent runs the jobs again; when the dead agent comes back under the
// same name, nothing of its earlier run is left in Docker.
const SLOTS = 2;
const JOB_MS = 3_000;
/** Lease TTL + 2 s: the bound for a lost job to be running again elsewhere. */
const RERUN_BOUND_MS = LEASE_TTL_MS + 2_000;

let cluster: ProcessCluster;
beforeAll(async () => {
  cluster = await ProcessCluster.start("2");
  await cluster.startAgent("victim", { slots: SLOTS });
  await cluster.startAgent("survivor", { slots: SLOTS });
});
afterAll(async () => {
  await cluster?.close();
});

describe("kill -9 of an agent with jobs running", () => {
  it("re-runs its jobs on the other agent within the lease TTL + 2 s and reaps its containers on restart", async () => {
    const victim = cluster.agent("victim");
    const survivor = cluster.agent("survivor");
    // As many jobs as slots: both agents busy, the survivor free again after one job.
    const ids = await submitMany(cluster.client, SLOTS * 2, (n) => ({
      source: SLEEPER,
      input: { n, ms: JOB_MS },
    }));
    let victimJobs: Job[] = [];
    await waitFor(
      "the victim to run its jobs",
      async () => {
        const jobs = await jobsNow(cluster.client, ids);
        victimJobs = jobs.filter((job) => job.node === victim.name && job.state === "running");
        return victimJobs.length === SLOTS;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    const deadRunContainers = await cluster.containersOf(victim.name);

    const killedAt = Date.now();
    await cluster.signalAgent("victim", "SIGKILL");

    // Each lost job: how long until it is leased to the survivor.
    const rerunAfterMs = new Map<string, number>();
    await waitFor(
      "the victim's jobs to run on the survivor",
      async () => {
        for (const job of await jobsNow(
          cluster.client,
          victimJobs.map((lost) => lost.id),
        )) {
          if (!rerunAfterMs.has(job.id) && job.node === survivor.name) {
            rerunAfterMs.set(job.id, Date.now() - killedAt);
          }
        }
        return rerunAfterMs.size === victimJobs.length;
      },
      { timeoutMs: RERUN_BOUND_MS + 20_000, intervalMs: 50 },
    ).catch(() => {});
    await waitFor(
      "every job to finish",
      async () => (await jobsNow(cluster.client, ids)).every((job) => job.state === "succeeded"),
      { timeoutMs: 30_000, intervalMs: 100 },
    ).catch(() => {});

    // The victim comes back under the same name: its earlier run's containers go.
    const restartedAt = Date.now();
    await cluster.startAgent("victim", { slots: SLOTS });
    const restartMs = Date.now() - restartedAt;
    await sleep(500);
    const afterRestart = await cluster.containersOf(victim.name);
    const leftFromDeadRun = afterRestart.filter((container) =>
      deadRunContainers.some((dead) => dead.id === container.id),
    );

    const rows = await listAll(cluster.client);
    const counts = tally(ids, rows);
    const rerunTimes = [...rerunAfterMs.values()];
    recordScenario({
      scenario: "2-agent-kill",
      title: "kill -9 an agent with jobs running; restart it under its name",
      jobsSubmitted: ids.length,
      ...tallyFigures(counts),
      recoveryMs: {
        rerunOnOtherAgentMax:
          rerunTimes.length === victimJobs.length ? Math.max(...rerunTimes) : null,
        rerunBound: RERUN_BOUND_MS,
        agentRestart: restartMs,
      },
      notes: {
        jobsOnVictim: victimJobs.length,
        deadRunContainers: deadRunContainers.length,
        leftFromDeadRun: leftFromDeadRun.length,
        containersAfterRestart: afterRestart.map(({ job, state }) => ({ job, state })),
        byNode: counts.byNode,
      },
    });

    const log = `victim log:\n${tail(victim.logFile, 10)}\nsurvivor log:\n${tail(survivor.logFile, 10)}`;
    expect(rerunAfterMs.size, log).toBe(victimJobs.length);
    for (const ms of rerunTimes) expect(ms, log).toBeLessThanOrEqual(RERUN_BOUND_MS);
    expect(counts.lost).toBe(0);
    expect(counts.duplicated).toBe(0);
    expect(counts.succeeded).toBe(ids.length);
    for (const job of await jobsNow(
      cluster.client,
      victimJobs.map((lost) => lost.id),
    )) {
      expect(job.node).toBe(survivor.name);
      expect(job.attempts).toBe(2);
    }
    // Only warm-pool containers (empty labrun.job) of the new run remain.
    expect(leftFromDeadRun).toEqual([]);
    for (const container of afterRestart) expect(container.job).toBe("");
  });
});
