import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobsNow, SLEEPER, submitMany, tally } from "./helpers/jobs.js";
import { bounded, ProcessCluster, tail, waitFor } from "./helpers/processes.js";
import { recordScenario, tallyFigures } from "./helpers/report.js";

// Scenario 6: SIGTERM is a graceful stop: no new leases, the running jobs
// finish and are reported, then the agent exits 0.
const JOBS = 3;
const JOB_MS = 2_000;
/** The jobs' own time, plus room (a busy 2-core machine) for reporting, the pool's removal and exit. */
const EXIT_BOUND_MS = JOB_MS + 28_000;

let cluster: ProcessCluster;
beforeAll(async () => {
  cluster = await ProcessCluster.start("6");
  await cluster.startAgent("a", { slots: JOBS });
});
afterAll(async () => {
  await cluster?.close();
});

describe("SIGTERM to an agent with jobs running", () => {
  it("finishes and reports its running jobs, then exits 0", async () => {
    const agent = cluster.agent("a");
    const ids = await submitMany(cluster.client, JOBS, (n) => ({
      source: SLEEPER,
      input: { n, ms: JOB_MS },
    }));
    await waitFor(
      "all jobs to run",
      async () => (await jobsNow(cluster.client, ids)).every((job) => job.state === "running"),
      { timeoutMs: 30_000, intervalMs: 50 },
    );

    const signalledAt = Date.now();
    await cluster.signalAgent("a", "SIGTERM");
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    try {
      exit = await bounded(agent.exited, EXIT_BOUND_MS, "the agent to exit after SIGTERM");
    } catch {
      // Recorded below; the assertions say what went wrong.
    }
    const exitMs = exit ? Date.now() - signalledAt : null;
    // Read right after the exit: the results must be in already, not later.
    const jobs = await jobsNow(cluster.client, ids);
    const counts = tally(ids, jobs);
    const containers = await cluster.containersOf(agent.name);
    recordScenario({
      scenario: "6-agent-sigterm",
      title: "SIGTERM an agent with running jobs",
      jobsSubmitted: JOBS,
      ...tallyFigures(counts),
      recoveryMs: { sigtermToExit: exitMs },
      notes: {
        exit: exit ?? "still running",
        states: jobs.map((job) => job.state),
        containersLeft: containers.length,
      },
    });

    const log = tail(agent.logFile, 15);
    expect(exit, log).toEqual({ code: 0, signal: null });
    for (const job of jobs) {
      expect(job.state, log).toBe("succeeded");
      expect(job.attempts).toBe(1);
      expect(job.node).toBe(agent.name);
    }
    expect(containers, "containers the stopped agent left").toEqual([]);
  });
});
