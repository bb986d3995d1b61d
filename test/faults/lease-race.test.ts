import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listAll, submitMany, TRIVIAL, tally, waitAllTerminal } from "./helpers/jobs.js";
import { logEntries, ProcessCluster } from "./helpers/processes.js";
import { FULL, recordScenario } from "./helpers/report.js";

// Scenario 5: two agents with many free slots race for the same queue. No job
// may be handed out twice: each is leased once, started once, succeeds once.
const AGENTS = ["a", "b"];
const SLOTS = 8;
const JOBS = FULL ? 200 : 64;

let cluster: ProcessCluster;
beforeAll(async () => {
  cluster = await ProcessCluster.start("5");
  // Debug logs: each agent logs "job started" once per job it is handed.
  for (const suffix of AGENTS) {
    await cluster.startAgent(suffix, { slots: SLOTS, warm: 0, logLevel: "debug" });
  }
});
afterAll(async () => {
  await cluster?.close();
});

describe("two agents racing for the same queued jobs", () => {
  it(`leases each of ${JOBS} jobs exactly once`, async () => {
    const ids = await submitMany(cluster.client, JOBS, (n) => ({ source: TRIVIAL, input: n }));
    const submittedAt = Date.now();
    let drainMs: number | null = null;
    try {
      drainMs = await waitAllTerminal(
        cluster.client,
        JOBS,
        FULL ? 400_000 : 150_000,
        "every job to finish",
      );
    } catch {
      // Recorded as null; the tally says what is missing.
    }
    const rows = await listAll(cluster.client, 100);
    const counts = tally(ids, rows);

    // Graceful stops flush the agents' logs; then count the starts per job.
    for (const suffix of AGENTS) await cluster.signalAgent(suffix, "SIGTERM");
    await Promise.all([...cluster.agents.values()].map((agent) => agent.exited));
    const starts = new Map<string, string[]>();
    for (const agent of cluster.agents.values()) {
      for (const entry of logEntries(agent.logFile, /^job started$/)) {
        const jobId = String(entry.jobId);
        starts.set(jobId, [...(starts.get(jobId) ?? []), agent.name]);
      }
    }
    const startedTwice = [...starts].filter(([, agents]) => agents.length > 1);
    const multiLeased = rows.filter((job) => job.attempts !== 1);
    const expired = logEntries(cluster.coordinator?.logFile ?? "", /leases expired/);
    recordScenario({
      scenario: "5-lease-race",
      title: `${AGENTS.length} agents × ${SLOTS} slots race for ${JOBS} trivial jobs (no warm pool)`,
      jobsSubmitted: JOBS,
      lost: counts.lost,
      duplicated: counts.duplicated + startedTwice.length,
      succeeded: counts.succeeded,
      failed: counts.failed,
      rerun: counts.rerun,
      recoveryMs: { drain: drainMs },
      notes: {
        jobsPerSecond: drainMs ? Math.round((JOBS / (drainMs / 1000)) * 10) / 10 : null,
        byNode: counts.byNode,
        failures: counts.failures,
        startsLogged: [...starts.values()].reduce((sum, agents) => sum + agents.length, 0),
        startedTwice: startedTwice.length,
        leasedMoreThanOnce: multiLeased.length,
        leaseExpiries: expired.length,
        submittedAt,
      },
    });

    expect(counts.rows).toBe(JOBS);
    expect(counts.duplicated).toBe(0);
    expect(counts.lost).toBe(0);
    expect(counts.succeeded).toBe(JOBS);
    expect(multiLeased.map((job) => `${job.id}: ${job.attempts}`)).toEqual([]);
    expect(expired).toEqual([]);
    // Each job was started by exactly one agent, once; both agents took part.
    expect(startedTwice).toEqual([]);
    expect(starts.size).toBe(JOBS);
    const names = [...cluster.agents.keys()].sort();
    expect(Object.keys(counts.byNode).sort()).toEqual(names);
    const byId = new Map(rows.map((job) => [job.id, job]));
    ids.forEach((id, n) => {
      const job = byId.get(id);
      expect(job?.outcome?.ok && job.outcome.result, `job ${n}`).toBe(n);
      expect(names).toContain(job?.node);
      expect(starts.get(id)).toEqual([job?.node]);
    });
  });
});
