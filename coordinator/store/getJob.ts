import type { Job, JobWaiting, Runtime } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import type { StoreContext } from "./database.js";
import { JOB_COLUMNS, type JobRow, toJob } from "./rows.js";

/** What a queued job that no ready node offers the runtime of says (both stores). */
export const waitingReason = (runtime: Runtime): string =>
  runtime === "python"
    ? "no ready node offers the python runtime: it stays queued until one does (an agent offers python when python3 is installed on its machine, or given with --python)"
    : `no ready node offers the ${runtime} runtime: it stays queued until one does`;

export function prepareGetJob({ db, settings }: StoreContext) {
  const byId = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`);
  // Ready and heard from within a lease TTL (listNodes calls the others lost).
  // An agent registered before runtimes offers node only.
  const offering = db
    .prepare<[{ runtime: Runtime; since: number }], number>(
      `SELECT COUNT(*) FROM agents
       WHERE state = 'ready' AND last_heartbeat_at >= @since
         AND @runtime IN (SELECT value FROM json_each(COALESCE(runtimes, '["node"]')))`,
    )
    .pluck();

  /** Why a queued job cannot run now, when no ready node could take it at all. */
  const waitingFor = (runtime: Runtime, now: number): JobWaiting | undefined =>
    offering.get({ runtime, since: now - settings.leaseTtlMs }) === 0
      ? { reason: waitingReason(runtime) }
      : undefined;

  const getJob = (id: string): Job => {
    const row = byId.get(id);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  };
  return {
    /** The job as stored (what the verbs that change a job answer with). */
    getJob,
    /** The job as a client reads it: a queued one says why it waits, when no node could take it. */
    readJob(id: string, now: number = Date.now()): Job {
      const job = getJob(id);
      if (job.state !== "queued") return job;
      const waiting = waitingFor(job.runtime, now);
      return waiting ? { ...job, waiting } : job;
    },
  };
}
