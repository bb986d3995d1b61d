import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { usePostgresDatabase } from "../../coordinator/test-support/postgres.js";
import { PgCluster } from "./helpers/pgCluster.js";
import { finishGaps, submitDoublers, tallyAnswered } from "./helpers/pgJobs.js";
import { logEntries, waitFor } from "./helpers/processes.js";
import { FULL, recordScenario } from "./helpers/report.js";

// Scenario 9: two coordinators on one PostgreSQL database; the agent
// (`--server A,B`) talks to A, which is stopped (SIGSTOP) for longer than
// the lease TTL while jobs run, then resumed (SIGCONT). The jobs running
// when A stops run longer than the TTL, so they keep their leases only if
// the agent's heartbeats fail over to B in time; no job runs twice, before
// or after A comes back.
const LEASE_TTL_MS = 8_000; // above the agent's 5 s silence before it fails over, plus a heartbeat
const STOPPED_MS = LEASE_TTL_MS + 4_000;
const JOB_MS = LEASE_TTL_MS + 2_000;
const SLOTS = 4;
const JOBS = FULL ? 4 * SLOTS : 2 * SLOTS;
const pg = usePostgresDatabase();

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await PgCluster.start("9", {
    store: pg.url(),
    coordinators: ["a", "b"],
    leaseTtl: `${LEASE_TTL_MS / 1000}s`,
  });
  await cluster.startAgent("x", { servers: ["a", "b"], slots: SLOTS });
});
afterAll(async () => {
  await cluster?.close();
});

describe("SIGSTOP of the agent's coordinator for longer than the lease TTL", () => {
  it(`fails the agent over to the other and runs none of ${JOBS} jobs twice`, async () => {
    // Submitted through B, so the submits themselves never meet the stopped A.
    const { answered, refused } = await submitDoublers([cluster.client(["b", "a"])], 0, JOBS, {
      ms: JOB_MS,
      parallel: 6,
    });
    const observer = cluster.client(["b"]);
    await waitFor(
      "a slot's worth of jobs to run",
      async () => (await observer.list({ state: "running", limit: 10 })).jobs.length >= SLOTS,
      { timeoutMs: 90_000, intervalMs: 50 },
    );

    const runningAtStop = (await observer.list({ state: "running", limit: 50 })).jobs.map(
      (job) => job.id,
    );
    const stoppedAt = Date.now();
    await cluster.signal("a", "SIGSTOP");
    await sleep(STOPPED_MS);
    await cluster.signal("a", "SIGCONT");
    const resumedAt = Date.now();

    let allDoneMs: number | null = null;
    try {
      allDoneMs = await waitFor(
        "every job to be terminal",
        async () => (await tallyAnswered(observer, answered, [])).lost.length === 0,
        { timeoutMs: FULL ? 300_000 : 120_000, intervalMs: 250 },
      );
    } catch {
      // Recorded as null; the tally says what is missing.
    }
    // Past a TTL after A is back: a lease A wrongly expired would have run again by now.
    await sleep(Math.max(0, resumedAt + LEASE_TTL_MS + 2_000 - Date.now()));
    // A graceful stop flushes the agent's log before the starts are counted.
    const agent = await cluster.stopAgent("x");
    const counts = await tallyAnswered(observer, answered, agent ? [agent.logFile] : []);
    const gaps = finishGaps(counts.jobs, stoppedAt);
    // When the agent took new work again: its lease long-poll was with A.
    const firstStartAfterStop = (agent ? logEntries(agent.logFile, /^job started$/) : [])
      .map((entry) => Number(entry.time))
      .filter((at) => at > stoppedAt)
      .sort((a, b) => a - b)[0];
    const expiries = [...cluster.coordinators.values()].flatMap(({ logFile }) =>
      logEntries(logFile, /leases expired/),
    );
    recordScenario({
      scenario: "9-pg-coordinator-sigstop",
      title: `SIGSTOP the agent's coordinator ${STOPPED_MS / 1000} s (lease TTL ${LEASE_TTL_MS / 1000} s), the other on the same PostgreSQL`,
      jobsSubmitted: counts.answered,
      lost: counts.lost.length,
      duplicated: counts.ranTwice.length,
      succeeded: counts.succeeded,
      failed: counts.failed,
      rerun: counts.rerun,
      recoveryMs: {
        stopped: resumedAt - stoppedAt,
        firstFinishAfterStop: gaps.firstMs,
        longestGapAfterStop: gaps.maxGapMs,
        firstLeaseAfterStop:
          firstStartAfterStop === undefined ? null : firstStartAfterStop - stoppedAt,
        allDone: allDoneMs,
      },
      notes: {
        runningAtStop: runningAtStop.length,
        leaseExpiries: expiries.length,
        rows: counts.rows,
        byNode: counts.byNode,
      },
    });

    expect(refused).toEqual([]);
    expect(counts.lost).toEqual([]);
    expect(counts.succeeded).toBe(JOBS);
    expect(counts.ranTwice).toEqual([]);
    // The jobs running when A stopped ended past the TTL on their first
    // lease: A was stopped for the whole TTL, so only heartbeats through B
    // could have renewed them.
    expect(runningAtStop.length).toBeGreaterThan(0);
    for (const id of runningAtStop) {
      const job = counts.jobs.find((row) => row.id === id);
      expect(job?.attempts, id).toBe(1);
      expect(Date.parse(job?.finishedAt ?? ""), id).toBeGreaterThan(stoppedAt + LEASE_TTL_MS);
    }
    expect(expiries).toEqual([]);
    expect(counts.rerun).toBe(0);
  });
});
