import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Job } from "../../protocol/index.js";
import { jobsNow, listAll, SLEEPER, submitMany, tally } from "./helpers/jobs.js";
import { logEntries, ProcessCluster, tail, waitFor } from "./helpers/processes.js";
import { recordScenario, tallyFigures } from "./helpers/report.js";

// Scenario 4: the coordinator is unreachable for 10 s while jobs finish on the
// agents. When it is back, the results computed meanwhile are delivered and
// taken (not thrown away and the jobs run again), and no job is lost.
const OUTAGE_MS = 10_000;
const SLOTS = 2;
const AGENTS = ["a", "b"];
/** Long enough to be running when the outage starts, short enough to end inside it. */
const JOB_MS = 2_500;

let cluster: ProcessCluster;
beforeAll(async () => {
  cluster = await ProcessCluster.start("4");
  for (const suffix of AGENTS) await cluster.startAgent(suffix, { slots: SLOTS });
});
afterAll(async () => {
  await cluster?.close();
});

type Variant = "killed" | "stopped";

/** Takes the coordinator away for OUTAGE_MS; returns [outage start, back] times. */
async function outage(variant: Variant): Promise<[number, number]> {
  const start = Date.now();
  await cluster.signalCoordinator(variant === "killed" ? "SIGKILL" : "SIGSTOP");
  await sleep(OUTAGE_MS - (Date.now() - start));
  if (variant === "killed") await cluster.startCoordinator();
  else await cluster.signalCoordinator("SIGCONT");
  return [start, Date.now()];
}

async function scenario(variant: Variant, key: string, title: string): Promise<void> {
  const busy = SLOTS * AGENTS.length;
  // A slot's worth running on every agent, as many again queued behind them.
  const ids = await submitMany(cluster.client, busy * 2, (n) => ({
    source: SLEEPER,
    input: { n, ms: JOB_MS },
  }));
  await waitFor(
    "every slot to run a job",
    async () =>
      (await jobsNow(cluster.client, ids)).filter((job) => job.state === "running").length === busy,
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  const refusedBefore = refusedResults();
  const [outageStart, backAt] = await outage(variant);

  let allDoneMs: number | null = null;
  try {
    allDoneMs = await waitFor(
      "every job to finish after the outage",
      async () => (await jobsNow(cluster.client, ids)).every((job) => job.state === "succeeded"),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
  } catch {
    // Recorded as null; the tally says what is missing.
  }
  const rows = (await listAll(cluster.client)).filter((job) => ids.includes(job.id));
  const counts = tally(ids, rows);
  // Jobs whose program finished while the coordinator was away (by the
  // container's clock): their results waited on the agents.
  const finishedInOutage = rows.filter((job) => {
    const doneAt = doneAtOf(job);
    return doneAt !== undefined && doneAt >= outageStart && doneAt < backAt && job.attempts === 1;
  });
  const heldBack = rows.filter((job) => job.attempts > 1);
  const deliveredAfterMs = finishedInOutage.map((job) =>
    job.finishedAt ? Date.parse(job.finishedAt) - backAt : Number.NaN,
  );
  const refused = refusedResults() - refusedBefore;
  recordScenario({
    scenario: key,
    title,
    jobsSubmitted: ids.length,
    ...tallyFigures(counts),
    recoveryMs: {
      outage: backAt - outageStart,
      resultsDeliveredAfterReturnMax: deliveredAfterMs.length
        ? Math.max(...deliveredAfterMs)
        : null,
      allDoneAfterReturn: allDoneMs,
    },
    notes: {
      running: busy,
      resultsTakenFromOutage: finishedInOutage.length,
      resultsRefusedAsStale: refused,
      rerunJobs: heldBack.map((job) => ({ id: job.id, attempts: job.attempts, node: job.node })),
      byNode: counts.byNode,
    },
  });

  const logs = [...cluster.agents.values()]
    .map((agent) => `${agent.name}:\n${tail(agent.logFile, 12)}`)
    .join("\n");
  expect(counts.lost).toBe(0);
  expect(counts.duplicated).toBe(0);
  expect(counts.succeeded).toBe(ids.length);
  // The jobs running when the coordinator went away finished during the
  // outage; their results must be taken when it is back, not run again.
  expect(refused, `results refused as stale\n${logs}`).toBe(0);
  expect(
    heldBack.map((job) => `${job.id} attempts=${job.attempts}`),
    `jobs run again after the outage\n${logs}`,
  ).toEqual([]);
  expect(finishedInOutage.length, logs).toBe(busy);
  for (const agent of cluster.agents.values()) expect(agent.running).toBe(true);
}

function doneAtOf(job: Job): number | undefined {
  const result = job.outcome?.ok ? job.outcome.result : undefined;
  return typeof result === "object" && result !== null && "doneAt" in result
    ? Number(result.doneAt)
    : undefined;
}

/** Results the agents were told were stale (409) so far. */
function refusedResults(): number {
  return [...cluster.agents.values()].reduce(
    (sum, agent) => sum + logEntries(agent.logFile, /^result not taken$/).length,
    0,
  );
}

describe("the coordinator unreachable for 10 s while jobs finish", () => {
  it("takes the results once it is back (killed, restarted in place after 10 s)", async () => {
    await scenario(
      "killed",
      "4a-coordinator-outage-kill",
      "coordinator down 10 s (kill -9, restart)",
    );
  });

  it("takes the results once it is back (SIGSTOP for 10 s, then SIGCONT)", async () => {
    await scenario("stopped", "4b-coordinator-outage-stop", "coordinator frozen 10 s (SIGSTOP)");
  });
});
