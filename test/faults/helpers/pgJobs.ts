import type { LabrunClient } from "../../../client/api.js";
import { isTerminal, type Job } from "../../../protocol/index.js";
import { FAULT_LIMITS, listAll } from "./jobs.js";
import { logEntries } from "./processes.js";

/** Sleeps `input.ms`, returns `n * 2`. */
export const DOUBLER = `exports.main = async ({ n, ms }) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return n * 2;
};`;

/** A submit the coordinator answered 201: the job's id and its input's `n`. */
export interface Answered {
  id: string;
  n: number;
}

/**
 * Submits DOUBLER jobs numbered `from`…`from + count - 1`, `parallel` at a
 * time, round-robin over `clients`; returns the answered ones and the
 * errors of the others (a fault test says which it allows).
 */
export async function submitDoublers(
  clients: LabrunClient[],
  from: number,
  count: number,
  options: { ms: number; parallel: number },
): Promise<{ answered: Answered[]; refused: unknown[] }> {
  const answered: Answered[] = [];
  const refused: unknown[] = [];
  for (let start = from; start < from + count; start += options.parallel) {
    const end = Math.min(from + count, start + options.parallel);
    await Promise.all(
      Array.from({ length: end - start }, async (_, offset) => {
        const n = start + offset;
        const client = clients[n % clients.length] as LabrunClient;
        try {
          const { id } = await client.submit({
            source: DOUBLER,
            input: { n, ms: options.ms },
            limits: FAULT_LIMITS,
          });
          answered.push({ id, n });
        } catch (error) {
          refused.push(error);
        }
      }),
    );
  }
  return { answered, refused };
}

/** How many times each job was started, over every agent's log ("job started", debug). */
export function startsByJob(logFiles: string[]): Map<string, number> {
  const starts = new Map<string, number>();
  for (const file of logFiles) {
    for (const entry of logEntries(file, /^job started$/)) {
      const id = String(entry.jobId);
      starts.set(id, (starts.get(id) ?? 0) + 1);
    }
  }
  return starts;
}

/** What the records and the agents' logs say about the jobs answered 201. */
export interface PgTally {
  answered: number;
  /** Rows in the database (a submit whose answer was lost may add one nobody was told of). */
  rows: number;
  /** Answered jobs with no row, or not terminal, or without their own result. */
  lost: string[];
  /** Jobs (any row) an agent started more than once. */
  ranTwice: string[];
  succeeded: number;
  failed: number;
  /** Succeeded jobs that needed more than one lease (a lease whose answer was lost expired). */
  rerun: number;
  /** Rows no answered submit named. */
  unanswered: number;
  byNode: Record<string, number>;
}

/** Reads every job through `client` and checks the answered ones against it. */
export async function tallyAnswered(
  client: LabrunClient,
  answered: Answered[],
  agentLogs: string[],
): Promise<PgTally & { jobs: Job[] }> {
  const jobs = await listAll(client, 200);
  const byId = new Map(jobs.map((job) => [job.id, job]));
  const starts = startsByJob(agentLogs);
  const answeredIds = new Set(answered.map(({ id }) => id));
  const result: PgTally = {
    answered: answered.length,
    rows: jobs.length,
    lost: [],
    ranTwice: [...starts].filter(([, times]) => times > 1).map(([id]) => id),
    succeeded: 0,
    failed: 0,
    rerun: 0,
    unanswered: jobs.filter((job) => !answeredIds.has(job.id)).length,
    byNode: {},
  };
  for (const { id, n } of answered) {
    const job = byId.get(id);
    const ok = job?.state === "succeeded" && job.outcome?.ok && job.outcome.result === n * 2;
    if (!job || !isTerminal(job.state) || (job.state === "succeeded" && !ok)) {
      result.lost.push(id);
      continue;
    }
    if (job.state === "succeeded") result.succeeded += 1;
    if (job.state === "failed") result.failed += 1;
    if (job.state === "succeeded" && job.attempts > 1) result.rerun += 1;
    const node = job.node ?? "(none)";
    result.byNode[node] = (result.byNode[node] ?? 0) + 1;
  }
  return { ...result, jobs };
}

/** How long after `since` the first job finished, and the longest gap between finishes after it. */
export function finishGaps(
  jobs: Job[],
  since: number,
): { firstMs: number | null; maxGapMs: number } {
  const ends = jobs
    .map((job) => (job.finishedAt ? Date.parse(job.finishedAt) : Number.NaN))
    .filter((at) => at >= since)
    .sort((a, b) => a - b);
  let maxGapMs = 0;
  let previous = since;
  for (const at of ends) {
    maxGapMs = Math.max(maxGapMs, at - previous);
    previous = at;
  }
  return { firstMs: ends[0] === undefined ? null : ends[0] - since, maxGapMs };
}
