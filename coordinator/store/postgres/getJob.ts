import type { Job } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import { type AgentFit, waitingOf } from "../getJob.js";
import { JOB_COLUMNS, type JobRow, toJob } from "../rows.js";
import { type PgContext, type Queryable, query } from "./database.js";

const BY_ID = `SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1`;
/**
 * The job as a client reads it, in one statement (one round trip, one
 * snapshot): a queued one also brings what says why it waits, each part
 * read only for a queued job. Its user's queued work older than it is
 * counted through jobs_owner_queued; the agents heard from within a lease
 * TTL (listNodes calls the others lost), runtimes as JSON text as the SQLite
 * row has them, so one rule reads both.
 */
const READ = `SELECT ${JOB_COLUMNS},
    CASE WHEN state = 'queued' THEN (
      SELECT json_build_object('running', u.running, 'max_running', u.max_running,
        'max_queued', u.max_queued)
      FROM users u WHERE u.name = jobs.owner) END AS queued_user,
    CASE WHEN state = 'queued' THEN (
      SELECT COUNT(*)::int FROM jobs ahead
      WHERE ahead.owner = jobs.owner AND ahead.state = 'queued' AND ahead.seq < jobs.seq) END
      AS queued_ahead,
    CASE WHEN state = 'queued' THEN (
      SELECT COALESCE(json_agg(json_build_object('state', a.state, 'max_limits', a.max_limits,
        'capacity', a.capacity, 'runtimes', array_to_json(a.runtimes)::text)), '[]'::json)
      FROM agents a WHERE a.last_heartbeat_at >= $2) END AS live_agents
  FROM jobs WHERE id = $1`;

interface ReadRow extends JobRow {
  queued_user: { running: number; max_running: number | null; max_queued: number | null } | null;
  queued_ahead: number | null;
  live_agents: AgentFit[] | null;
}

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
    /**
     * The job as a client reads it: a queued one says why it waits, and its
     * place in line. One statement: a waiting client reads its job twice per
     * job (before and after the wake-up), so each round trip here is on a
     * warm job's path twice.
     */
    readJob: async (id: string, now: number = Date.now()): Promise<Job> => {
      const [row] = await query<ReadRow>(sql, READ, [id, now - settings.leaseTtlMs]);
      if (!row) throw notFound(`job ${id}`);
      const job = toJob(row);
      if (job.state !== "queued") return job;
      const position = (row.queued_ahead ?? 0) + 1;
      const waiting = waitingOf(
        job,
        row.owner,
        position,
        row.live_agents ?? [],
        row.queued_user ?? undefined,
        settings,
      );
      return { ...job, waiting };
    },
  };
}
