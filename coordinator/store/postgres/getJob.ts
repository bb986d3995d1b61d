import type { Job, JobWaiting, Runtime } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import { waitingReason } from "../getJob.js";
import { JOB_COLUMNS, type JobRow, toJob } from "../rows.js";
import { type PgContext, type Queryable, query } from "./database.js";

const BY_ID = `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`;
// Ready and heard from within a lease TTL (listNodes calls the others lost).
// An agent registered before runtimes offers node only.
const OFFERING = `SELECT COUNT(*) AS n FROM agents
  WHERE state = 'ready' AND last_heartbeat_at >= $1
    AND $2 = ANY (COALESCE(runtimes, ARRAY['node']))`;

/** The job as stored, read on `on` (default: the pool). */
export type GetJob = (id: string, on?: Queryable) => Promise<Job>;

export function prepareGetJob({ sql, settings }: PgContext) {
  /** Why a queued job cannot run now, when no ready node could take it at all. */
  const waitingFor = async (runtime: Runtime, now: number): Promise<JobWaiting | undefined> => {
    const [offering] = await query<{ n: number }>(sql, OFFERING, [
      now - settings.leaseTtlMs,
      runtime,
    ]);
    return offering?.n === 0 ? { reason: waitingReason(runtime) } : undefined;
  };

  /** What the verbs that change a job answer with. */
  const getJob: GetJob = async (id, on = sql) => {
    const [row] = await query<JobRow>(on, BY_ID, [id]);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  };
  return {
    getJob,
    /** The job as a client reads it: a queued one says why it waits, when no node could take it. */
    async readJob(id: string, now: number = Date.now()): Promise<Job> {
      const job = await getJob(id);
      if (job.state !== "queued") return job;
      const waiting = await waitingFor(job.runtime, now);
      return waiting ? { ...job, waiting } : job;
    },
  };
}
