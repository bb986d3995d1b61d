import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_PREFIX } from "../../protocol/index.js";
import { FAULT_LIMITS } from "./helpers/jobs.js";
import { PgCluster } from "./helpers/pgCluster.js";
import { type Answered, DOUBLER, tallyAnswered } from "./helpers/pgJobs.js";
import { type PrivatePostgres, startPrivatePostgres } from "./helpers/privatePostgres.js";
import { tail, waitFor } from "./helpers/processes.js";
import { FULL, recordScenario } from "./helpers/report.js";

// Scenario 8: two coordinators on a PostgreSQL server of this file's own,
// which is restarted (`pg_ctl restart -m fast`) and then stopped for a few
// seconds and started again, while jobs run and submits keep coming. The
// coordinators are never restarted: they reconnect by themselves. Every
// submit answered 201 is kept and ends with its own result; every other
// answer is a prompt 503 UNAVAILABLE (never a hang, never a 500).
const OUTAGE_MS = 3_000;
const WARMUP_JOBS = FULL ? 60 : 16;
const SUBMIT_TIMEOUT_MS = 15_000;
const SUBMIT_EVERY_MS = FULL ? 100 : 400;

let pg: PrivatePostgres;
let cluster: PgCluster;
beforeAll(async () => {
  pg = await startPrivatePostgres();
  cluster = await PgCluster.start("8", { store: pg.url(), coordinators: ["a", "b"] });
  await cluster.startAgent("x", { servers: ["a", "b"], slots: 4 });
});
afterAll(async () => {
  await cluster?.close();
  await pg?.destroy();
});

/** One POST /jobs to one coordinator, as it answered. */
interface SubmitAnswer {
  coordinator: string;
  status: number | "timeout" | "error";
  code?: string;
  ms: number;
  at: number;
}

/**
 * Submits DOUBLER jobs one after another, alternating between the
 * coordinators, each straight to one of them (no failover: the test wants
 * each coordinator's own answer), until `stop()`.
 */
function keepSubmitting(from: number) {
  const answers: SubmitAnswer[] = [];
  const answered: Answered[] = [];
  let stopped = false;
  const names = ["a", "b"];
  const loop = (async () => {
    for (let n = from; !stopped; n++) {
      const coordinator = names[n % names.length] as string;
      const at = Date.now();
      const answer: SubmitAnswer = { coordinator, status: "error", ms: 0, at };
      try {
        const response = await fetch(`${cluster.coordinator(coordinator).url}${API_PREFIX}/jobs`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${cluster.tokens.client}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ source: DOUBLER, input: { n, ms: 50 }, limits: FAULT_LIMITS }),
          signal: AbortSignal.timeout(SUBMIT_TIMEOUT_MS),
        });
        const body = (await response.json()) as { id?: string; error?: { code?: string } };
        answer.status = response.status;
        if (body.error?.code) answer.code = body.error.code;
        if (response.status === 201 && body.id) answered.push({ id: body.id, n });
      } catch (error) {
        answer.status = (error as Error).name === "TimeoutError" ? "timeout" : "error";
      }
      answer.ms = Date.now() - at;
      answers.push(answer);
      // Paced: the agent drains them on a loaded 2-core machine within the test.
      await sleep(SUBMIT_EVERY_MS);
    }
  })();
  return {
    answers,
    answered,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/**
 * Both coordinators answer /readyz again; resolves with how long that took.
 * When they do not, the error says whether each is still running and ends
 * with its log's last lines: the logs of a failed run may not outlive it.
 */
const bothReady = () =>
  waitFor(
    "both coordinators to be ready again",
    async () => {
      for (const name of ["a", "b"]) {
        const response = await fetch(`${cluster.coordinator(name).url}/readyz`);
        if (!response.ok) return false;
      }
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  ).catch((error: unknown) => {
    const states = ["a", "b"].map((name) => {
      const { process, logFile } = cluster.coordinator(name);
      return `coordinator ${name} ${process.running ? "running" : "exited"}; its log ends:\n${tail(logFile, 15)}`;
    });
    throw new Error(`${(error as Error).message}\n${states.join("\n")}`);
  });

describe("PostgreSQL restarted and stopped for a while mid-run", () => {
  it("keeps every submit answered 201, answers the others 503, and needs no coordinator restart", async () => {
    const submitter = keepSubmitting(0);
    await waitFor("the first jobs to be answered", () => submitter.answered.length >= WARMUP_JOBS, {
      timeoutMs: 60_000,
      intervalMs: 50,
    });

    // 1. pg_ctl restart -m fast: sessions are ended, the server comes back at once.
    const restartAt = Date.now();
    await pg.restart();
    const restartMs = Date.now() - restartAt;
    const afterRestartMs = await bothReady();

    // 2. Down for OUTAGE_MS, then started again.
    const outageAt = Date.now();
    await pg.stop();
    await sleep(OUTAGE_MS);
    await pg.start();
    const backAt = Date.now();
    const reconnectMs = await bothReady();
    const readyAt = Date.now();

    // Submits go on after the outage, on both coordinators.
    await waitFor(
      "a submit on each coordinator answered after the outage",
      () =>
        ["a", "b"].every((name) =>
          submitter.answers.some(
            (answer) =>
              answer.coordinator === name && answer.at >= readyAt && answer.status === 201,
          ),
        ),
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    await submitter.stop();

    const observer = cluster.client(["a", "b"]);
    let allDoneMs: number | null = null;
    try {
      allDoneMs = await waitFor(
        "every answered job to be terminal",
        async () => (await tallyAnswered(observer, submitter.answered, [])).lost.length === 0,
        { timeoutMs: FULL ? 300_000 : 120_000, intervalMs: 250 },
      );
    } catch {
      // Recorded as null; the tally says what is missing.
    }
    // A graceful stop flushes the agent's log before the starts are counted.
    const agent = await cluster.stopAgent("x");
    const counts = await tallyAnswered(observer, submitter.answered, agent ? [agent.logFile] : []);
    const refusals = submitter.answers.filter((answer) => answer.status !== 201);
    const byKind = (answers: SubmitAnswer[]) =>
      answers.reduce<Record<string, number>>((kinds, answer) => {
        const kind = `${answer.status}${answer.code ? ` ${answer.code}` : ""}`;
        kinds[kind] = (kinds[kind] ?? 0) + 1;
        return kinds;
      }, {});
    const slowestRefusalMs = Math.max(0, ...refusals.map((answer) => answer.ms));
    recordScenario({
      scenario: "8-pg-restart",
      title: `PostgreSQL restarted (-m fast), then down ${OUTAGE_MS / 1000} s, under two coordinators mid-run`,
      jobsSubmitted: counts.answered,
      lost: counts.lost.length,
      duplicated: counts.ranTwice.length,
      succeeded: counts.succeeded,
      failed: counts.failed,
      rerun: counts.rerun,
      recoveryMs: {
        pgRestart: restartMs,
        readyAfterRestart: afterRestartMs,
        outage: backAt - outageAt,
        readyAfterStart: reconnectMs,
        allDone: allDoneMs,
      },
      notes: {
        submits: submitter.answers.length,
        answers: byKind(submitter.answers),
        slowestRefusalMs,
        rows: counts.rows,
        unansweredRows: counts.unanswered,
      },
    });

    // Submits were refused (the outage was seen), each promptly, as a 503 with its code.
    expect(refusals.length).toBeGreaterThan(0);
    expect(byKind(refusals)).toEqual({ "503 UNAVAILABLE": refusals.length });
    expect(slowestRefusalMs).toBeLessThan(SUBMIT_TIMEOUT_MS);
    // Every answered submit is kept and ran once, with its own result.
    expect(counts.lost).toEqual([]);
    expect(counts.succeeded).toBe(counts.answered);
    expect(counts.ranTwice).toEqual([]);
    // A row no 201 named (a commit whose answer was lost) ran as well, once.
    expect(counts.jobs.filter((job) => job.state !== "succeeded")).toEqual([]);
    // Both coordinators are the processes started at the beginning.
    for (const { process } of cluster.coordinators.values()) expect(process.running).toBe(true);
  });
});
