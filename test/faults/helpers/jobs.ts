import type { LabrunClient } from "../../../client/api.js";
import { isTerminal, type Job } from "../../../protocol/index.js";
import { waitFor } from "./processes.js";

/** Returns its input at once. */
export const TRIVIAL = "exports.main = (n) => n;";

/**
 * Sleeps `input.ms`, then returns `{ n, doneAt }`: `doneAt` is the container's
 * clock (the host's) when the program finished, so a test can tell whether it
 * finished while the coordinator was away.
 */
export const SLEEPER = `exports.main = async ({ n, ms }) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { n, doneAt: Date.now() };
};`;

/**
 * The scenarios test leases, not limits: a generous wall time, so that on a
 * loaded machine a cold container's slow node start-up (it counts against the
 * job's time) never ends a job with TIMEOUT.
 */
export const FAULT_LIMITS = { timeoutMs: 60_000 };

/** Submits `count` jobs, a few at a time; returns their ids in submission order. */
export async function submitMany(
  client: LabrunClient,
  count: number,
  job: (n: number) => { source: string; input: unknown; limits?: { timeoutMs?: number } },
): Promise<string[]> {
  const ids: string[] = new Array(count);
  const batch = 25;
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    await Promise.all(
      Array.from({ length: end - start }, async (_, offset) => {
        const n = start + offset;
        const { source, input, limits } = job(n);
        ids[n] = (
          await client.submit({ source, input: input as never, limits: limits ?? FAULT_LIMITS })
        ).id;
      }),
    );
  }
  return ids;
}

/** Every job record the coordinator has, through the paged list (newest first). */
export async function listAll(client: LabrunClient, pageSize = 100): Promise<Job[]> {
  const jobs: Job[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const answer = await client.list({ limit: pageSize, ...(cursor ? { cursor } : {}) });
    jobs.push(...answer.jobs);
    cursor = answer.nextCursor;
    if (!cursor) return jobs;
  }
  throw new Error("the job list did not end after 10 000 pages");
}

/** What the records say about the jobs a scenario submitted. */
export interface Tally {
  submitted: number;
  /** Rows the paged list returned. */
  rows: number;
  /** Submitted jobs with no row, or not terminal, at the end. */
  lost: number;
  /** Rows beyond one per submitted id (the same id twice, or ids nobody submitted). */
  duplicated: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Succeeded jobs that needed more than one lease. */
  rerun: number;
  byNode: Record<string, number>;
  /** Failure codes seen, with counts. */
  failures: Record<string, number>;
}

/** Counts the records against the submitted ids: each id must appear exactly once. */
export function tally(submitted: string[], rows: Job[]): Tally {
  const wanted = new Set(submitted);
  const seen = new Map<string, number>();
  for (const row of rows) seen.set(row.id, (seen.get(row.id) ?? 0) + 1);
  let duplicated = 0;
  for (const [id, times] of seen) duplicated += wanted.has(id) ? times - 1 : times;
  const byId = new Map(rows.map((row) => [row.id, row]));
  const result: Tally = {
    submitted: submitted.length,
    rows: rows.length,
    lost: 0,
    duplicated,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    rerun: 0,
    byNode: {},
    failures: {},
  };
  for (const id of wanted) {
    const job = byId.get(id);
    if (!job || !isTerminal(job.state)) {
      result.lost += 1;
      continue;
    }
    if (job.state === "succeeded") result.succeeded += 1;
    if (job.state === "failed") result.failed += 1;
    if (job.state === "cancelled") result.cancelled += 1;
    if (job.state === "succeeded" && job.attempts > 1) result.rerun += 1;
    if (job.outcome && !job.outcome.ok) {
      const code = job.outcome.error.code;
      result.failures[code] = (result.failures[code] ?? 0) + 1;
    }
    const node = job.node ?? "(none)";
    result.byNode[node] = (result.byNode[node] ?? 0) + 1;
  }
  return result;
}

/** How many jobs are in a terminal state now (one list call per 500). */
export async function countTerminal(client: LabrunClient): Promise<number> {
  const jobs = await listAll(client, 500);
  return jobs.filter((job) => isTerminal(job.state)).length;
}

/** Waits until every listed job is terminal; returns how long it took. */
export async function waitAllTerminal(
  client: LabrunClient,
  total: number,
  timeoutMs: number,
  what: string,
): Promise<number> {
  return waitFor(what, async () => (await countTerminal(client)) >= total, {
    timeoutMs,
    intervalMs: 250,
  });
}

/** Jobs (by id) in the given states now. */
export async function jobsNow(client: LabrunClient, ids: string[]): Promise<Job[]> {
  return Promise.all(ids.map((id) => client.get(id)));
}
