import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { usePostgresDatabase } from "../../coordinator/test-support/postgres.js";
import { PgCluster } from "./helpers/pgCluster.js";
import { type Answered, finishGaps, submitDoublers, tallyAnswered } from "./helpers/pgJobs.js";
import { waitFor } from "./helpers/processes.js";
import { FULL, recordScenario } from "./helpers/report.js";

// Scenario 7: two coordinators on one PostgreSQL database, an agent with
// `--server A,B`, clients submitting through both (A first, and B first);
// kill -9 A mid-run. Every job answered 201 ends with its own result, and no
// job runs (or records a result) twice.
const JOBS = FULL ? 400 : 48;
const SLOTS = 4;
const pg = usePostgresDatabase();

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await PgCluster.start("7", { store: pg.url(), coordinators: ["a", "b"] });
  await cluster.startAgent("x", { servers: ["a", "b"], slots: SLOTS });
});
afterAll(async () => {
  await cluster?.close();
});

describe("kill -9 of one of two coordinators on PostgreSQL under load", () => {
  it(`loses none of ${JOBS} jobs and runs none twice`, async () => {
    const clients = [cluster.client(["a", "b"]), cluster.client(["b", "a"])];
    const answered: Answered[] = [];
    const refused: unknown[] = [];
    const submit = async (from: number, count: number) => {
      const round = await submitDoublers(clients, from, count, { ms: 100, parallel: 6 });
      answered.push(...round.answered);
      refused.push(...round.refused);
    };
    const observer = cluster.client(["b"]);

    // A third submitted and partly run; then A dies while the rest is submitted.
    const third = Math.floor(JOBS / 3);
    await submit(0, third);
    await waitFor(
      "a few jobs to finish",
      async () => (await observer.list({ state: "succeeded", limit: 10 })).jobs.length >= 5,
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    const killedAt = Date.now();
    const rest = submit(third, JOBS - third);
    await cluster.signal("a", "SIGKILL");
    await rest;

    let allDoneMs: number | null = null;
    try {
      allDoneMs = await waitFor(
        "every answered job to be terminal",
        async () => {
          const { lost } = await tallyAnswered(observer, answered, []);
          return lost.length === 0;
        },
        { timeoutMs: FULL ? 300_000 : 90_000, intervalMs: 250 },
      );
    } catch {
      // Recorded as null; the tally says what is missing.
    }
    // A graceful stop flushes the agent's log before the starts are counted.
    const agent = await cluster.stopAgent("x");
    const counts = await tallyAnswered(observer, answered, agent ? [agent.logFile] : []);
    const gaps = finishGaps(counts.jobs, killedAt);
    recordScenario({
      scenario: "7-pg-coordinator-kill",
      title: "kill -9 one of two coordinators on PostgreSQL mid-run (agent and clients on A,B)",
      jobsSubmitted: counts.answered,
      lost: counts.lost.length,
      duplicated: counts.ranTwice.length,
      succeeded: counts.succeeded,
      failed: counts.failed,
      rerun: counts.rerun,
      recoveryMs: {
        firstFinishAfterKill: gaps.firstMs,
        longestGapAfterKill: gaps.maxGapMs,
        allDoneAfterKill: allDoneMs,
      },
      notes: {
        rows: counts.rows,
        unansweredRows: counts.unanswered,
        refusedSubmits: refused.length,
        byNode: counts.byNode,
      },
    });

    expect(refused).toEqual([]);
    expect(counts.answered).toBe(JOBS);
    expect(counts.lost).toEqual([]);
    expect(counts.succeeded).toBe(JOBS);
    expect(counts.ranTwice).toEqual([]);
    // Every row ran: a submit whose answer died with A was queued on B again, and ran too.
    const terminal = counts.jobs.filter((job) => job.state === "succeeded");
    expect(terminal.length).toBe(counts.rows);
    expect(counts.byNode).toEqual({ [`${cluster.prefix}-x`]: JOBS });
  });
});
