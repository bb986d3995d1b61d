import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countTerminal, listAll, submitMany, tally } from "./helpers/jobs.js";
import { ProcessCluster, tail, waitFor } from "./helpers/processes.js";
import { FULL, recordScenario, tallyFigures } from "./helpers/report.js";

// Scenario 1: kill -9 the coordinator mid-run, start it again on the same data
// dir and port; the agents must find it again on their own.
const JOBS = FULL ? 500 : 60;
const SLOTS = 4;
const PROGRAM = `exports.main = async (n) => { await new Promise((r) => setTimeout(r, 100)); return n * 2; };`;

let cluster: ProcessCluster;
beforeAll(async () => {
  cluster = await ProcessCluster.start("1");
  await cluster.startAgent("a", { slots: SLOTS });
  await cluster.startAgent("b", { slots: SLOTS });
});
afterAll(async () => {
  await cluster?.close();
});

describe("kill -9 of the coordinator mid-run", () => {
  it(`brings all ${JOBS} jobs to exactly one success after a restart in place`, async () => {
    const ids = await submitMany(cluster.client, JOBS, (n) => ({ source: PROGRAM, input: n }));

    // Mid-run: about a third done.
    await waitFor(
      "a third of the jobs to finish",
      async () => (await countTerminal(cluster.client)) >= Math.floor(JOBS / 3),
      { timeoutMs: FULL ? 300_000 : 120_000, intervalMs: 50 },
    );
    const doneBeforeKill = await countTerminal(cluster.client);
    const killedAt = Date.now();
    await cluster.signalCoordinator("SIGKILL");
    // Long enough for every agent to notice (failed lease polls, heartbeats, results).
    await sleep(1_500);
    await cluster.startCoordinator();
    const backAt = Date.now();
    const downMs = backAt - killedAt;

    // The agents come back on their own: jobs finish again without any help.
    let firstFinishAfterRestartMs: number | null = null;
    try {
      firstFinishAfterRestartMs = await waitFor(
        "a job to finish after the restart",
        async () => (await countTerminal(cluster.client)) > doneBeforeKill,
        { timeoutMs: 30_000, intervalMs: 50 },
      );
    } catch {
      // Recorded as null and asserted below.
    }
    let allDoneMs: number | null = null;
    try {
      allDoneMs = await waitFor(
        "every job to be terminal",
        async () => (await countTerminal(cluster.client)) >= JOBS,
        { timeoutMs: FULL ? 600_000 : 90_000, intervalMs: 200 },
      );
    } catch {
      // Recorded as null; the tally below says what is missing.
    }

    const rows = await listAll(cluster.client, 100);
    const counts = tally(ids, rows);
    const finishedAfterRestart = rows.filter(
      (job) => job.finishedAt && Date.parse(job.finishedAt) >= backAt,
    );
    const nodesAfterRestart = new Set(finishedAfterRestart.map((job) => job.node));
    const nodes = await cluster.admin.nodes();
    recordScenario({
      scenario: "1-coordinator-kill",
      title: "kill -9 coordinator mid-run, restart in place",
      jobsSubmitted: JOBS,
      ...tallyFigures(counts),
      recoveryMs: {
        coordinatorDown: downMs,
        firstJobAfterRestart: firstFinishAfterRestartMs,
        allDoneAfterRestart: allDoneMs,
      },
      notes: {
        doneBeforeKill,
        byNode: counts.byNode,
        failures: counts.failures,
        finishedAfterRestartByNode: Object.fromEntries(
          [...nodesAfterRestart].map((node) => [
            node,
            finishedAfterRestart.filter((job) => job.node === node).length,
          ]),
        ),
      },
    });

    const agentNames = [...cluster.agents.keys()].sort();
    const logs = () =>
      agentNames.map((name) => `${name}:\n${tail(cluster.agents.get(name)?.logFile ?? "", 8)}`);
    // The agents survived the coordinator's death and found it again by themselves.
    for (const agent of cluster.agents.values())
      expect(agent.running, logs().join("\n")).toBe(true);
    expect(firstFinishAfterRestartMs, logs().join("\n")).not.toBeNull();
    expect([...nodesAfterRestart].sort(), logs().join("\n")).toEqual(agentNames);
    for (const name of agentNames) {
      const live = nodes.filter((node) => node.name === name && node.state === "ready");
      expect(live.length, `${name} is a ready node after the restart`).toBeGreaterThanOrEqual(1);
    }
    // Every job exactly once, and succeeded with its own result.
    expect(counts.rows).toBe(JOBS);
    expect(counts.duplicated).toBe(0);
    expect(counts.lost).toBe(0);
    expect(counts.succeeded).toBe(JOBS);
    const byId = new Map(rows.map((job) => [job.id, job]));
    ids.forEach((id, n) => {
      const job = byId.get(id);
      expect(job?.outcome?.ok && job.outcome.result, `job ${n} (${id})`).toBe(n * 2);
    });
  });
});
