import type { Job } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import { type AgentFit, waitingOf } from "../getJob.js";
import { JOB_COLUMNS, type JobRow, toJob } from "../rows.js";
import { type PgContext, type Queryable, query, readSnapshot } from "./database.js";

const BY_ID = `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`;
// Heard from within a lease TTL (listNodes calls the others lost); runtimes
// as JSON text, as the SQLite row has them, so one rule reads both.
const LIVE_AGENTS = `SELECT state, max_limits, capacity, array_to_json(runtimes)::text AS runtimes
  FROM agents WHERE last_heartbeat_at >= $1`;
const USER = "SELECT running, max_running, max_queued FROM users WHERE name = $1";
// Its user's queued work older than it, through jobs_owner_queued.
const AHEAD = `SELECT COUNT(*)::int AS n FROM jobs WHERE owner = $1 AND state = 'queued' AND seq < $2`;

/** The job as stored, read on `on` (default: the pool). */
export type GetJob = (id: string, on?: Queryable) => Promise<Job>;

export function prepareGetJob({ sql, settings }: PgContext) {
  /** What the verbs that change a job answer with. */
  const getJob: GetJob = async (id, on = sql) => {
    const [row] = await query<JobRow>(on, BY_ID, [id]);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  };
  return {
    getJob,
    /** The job as a client reads it: a queued one says why it waits, and its place in line. */
    readJob: (id: string, now: number = Date.now()): Promise<Job> =>
      readSnapshot(sql, async (tx) => {
        const [row] = await query<JobRow>(tx, BY_ID, [id]);
        if (!row) throw notFound(`job ${id}`);
        const job = toJob(row);
        if (job.state !== "queued") return job;
        const [agents, [user], [ahead]] = await Promise.all([
          query<AgentFit>(tx, LIVE_AGENTS, [now - settings.leaseTtlMs]),
          query<{ running: number; max_running: number | null; max_queued: number | null }>(
            tx,
            USER,
            [row.owner],
          ),
          query<{ n: number }>(tx, AHEAD, [row.owner, row.seq]),
        ]);
        const position = (ahead?.n ?? 0) + 1;
        return { ...job, waiting: waitingOf(job, row.owner, position, agents, user, settings) };
      }),
  };
}
