import {
  type AgentCapacity,
  type Job,
  type JobLimits,
  type JobWaiting,
  LIMIT_NAMES,
  type MaxLimits,
  type Runtime,
} from "../../protocol/index.js";
import { notFound } from "../errors.js";
import type { StoreContext } from "./database.js";
import { JOB_COLUMNS, type JobRow, toJob } from "./rows.js";
import { quotasOf } from "./users.js";

/** What the waiting reason reads of an agent (runtimes as JSON text, as SQLite stores them). */
export interface AgentFit {
  state: string;
  max_limits: string | null;
  capacity: string | null;
  runtimes: string | null;
}

/**
 * Whether an agent would ever take the job, as the lease decides it: it
 * offers the runtime (an agent registered before runtimes offers node only),
 * its largest limits hold the job's, and its capacity is at least the job.
 */
export function agentTakes(agent: AgentFit, runtime: Runtime, limits: JobLimits): boolean {
  const runtimes = JSON.parse(agent.runtimes ?? '["node"]') as Runtime[];
  if (!runtimes.includes(runtime)) return false;
  const max = (agent.max_limits ? JSON.parse(agent.max_limits) : {}) as MaxLimits;
  if (LIMIT_NAMES.some((name) => limits[name] > (max[name] ?? Number.POSITIVE_INFINITY))) {
    return false;
  }
  const capacity = (agent.capacity ? JSON.parse(agent.capacity) : {}) as AgentCapacity;
  return (
    limits.memoryMb <= (capacity.memoryMb ?? Number.POSITIVE_INFINITY) &&
    limits.cpus <= (capacity.cpus ?? Number.POSITIVE_INFINITY) + 0.0005
  );
}

function noNodeMessage(runtime: Runtime): string {
  const python =
    runtime === "python"
      ? " (an agent offers python when python3 is installed on its machine, or given with --python)"
      : "";
  return `no ready node offers the ${runtime} runtime with limits this large: it stays queued until one does${python}`;
}

/**
 * Why a queued job waits (both stores): no live node would ever take it, the
 * ones that would are draining, its user is at their max-running quota, or
 * the nodes are busy; `position` is its place in its user's queued work.
 */
export function waitingOf(
  job: Job,
  owner: string,
  position: number,
  agents: readonly AgentFit[],
  user: { running: number; max_running: number | null; max_queued: number | null } | undefined,
  settings: StoreContext["settings"],
): JobWaiting {
  const takers = agents.filter((agent) => agentTakes(agent, job.runtime, job.limits));
  if (!takers.some((agent) => agent.state === "ready")) {
    return takers.length > 0
      ? {
          reason: "nodes_draining",
          message: "the nodes that would take it are draining: it runs once one is resumed",
          position,
        }
      : { reason: "no_node_fits", message: noNodeMessage(job.runtime), position };
  }
  const { maxRunning } = user ? quotasOf(user, settings) : { maxRunning: undefined };
  if (user && maxRunning !== undefined && user.running >= maxRunning) {
    return {
      reason: "user_max_running",
      message: `user ${owner} runs ${user.running} job(s), their max-running quota: it runs when one of theirs ends`,
      position,
    };
  }
  return {
    reason: "no_free_slot",
    message: `the nodes that take it are busy: it is number ${position} of ${owner}'s queued work; fair share picks whose job runs next`,
    position,
  };
}

export function prepareGetJob({ db, settings }: StoreContext) {
  const byId = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`);
  // Heard from within a lease TTL (listNodes calls the others lost).
  const liveAgents = db.prepare<[number], AgentFit>(
    `SELECT state, max_limits, capacity, runtimes FROM agents WHERE last_heartbeat_at >= ?`,
  );
  const user = db.prepare<
    [string],
    { running: number; max_running: number | null; max_queued: number | null }
  >("SELECT running, max_running, max_queued FROM users WHERE name = ?");
  // Its user's queued work older than it, from jobs_owner_queued alone.
  const ahead = db
    .prepare<[string, number], number>(
      `SELECT COUNT(*) FROM jobs INDEXED BY jobs_owner_queued
       WHERE owner = ? AND state = 'queued' AND seq < ?`,
    )
    .pluck();

  /** Why a queued job waits, from what the lease reads: the nodes, its user's quota and counts. */
  const waitingFor = (row: JobRow, job: Job, now: number): JobWaiting =>
    waitingOf(
      job,
      row.owner,
      (ahead.get(row.owner, row.seq) ?? 0) + 1,
      liveAgents.all(now - settings.leaseTtlMs),
      user.get(row.owner),
      settings,
    );

  const getJob = (id: string): Job => {
    const row = byId.get(id);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  };
  return {
    /** The job as stored (what the verbs that change a job answer with). */
    getJob,
    /** The job as a client reads it: a queued one says why it waits, and its place in line. */
    readJob: db.transaction(function readJob(id: string, now: number = Date.now()): Job {
      const row = byId.get(id);
      if (!row) throw notFound(`job ${id}`);
      const job = toJob(row);
      return job.state === "queued" ? { ...job, waiting: waitingFor(row, job, now) } : job;
    }),
  };
}
