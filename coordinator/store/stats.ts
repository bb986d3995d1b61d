import type { ClusterStats, JobState } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

/** The statements of `stats`, exported so a test can check their query plans. */
export const STATS_SQL = {
  // A covering scan of jobs_by_state: never reads the rows (and their programs).
  jobsByState: "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state",
  // jobs_by_finished (migration 3) answers both counts from the index alone.
  finishedSince: `SELECT SUM(finished_at >= @minuteAgo) AS lastMinute, COUNT(*) AS lastHour
    FROM jobs WHERE finished_at >= @hourAgo`,
  // A covering scan of jobs_by_batch_state: a batch's items only, never their rows.
  itemsByState: `SELECT state, COUNT(*) AS n FROM jobs INDEXED BY jobs_by_batch_state
    WHERE batch_id IS NOT NULL GROUP BY state`,
  batchesByState: `SELECT COALESCE(final_state, 'active') AS state, COUNT(*) AS n
    FROM batches GROUP BY 1`,
  // The same rule as listNodes: silent for longer than a lease means lost.
  nodesByState: `SELECT CASE WHEN @now - last_heartbeat_at > @leaseTtlMs THEN 'lost' ELSE state END
      AS state, COUNT(*) AS n
    FROM agents GROUP BY 1`,
};

export function prepareStats({ db, settings }: StoreContext) {
  const jobsByState = db.prepare<[], { state: JobState; n: number }>(STATS_SQL.jobsByState);
  const finishedSince = db.prepare<
    { minuteAgo: number; hourAgo: number },
    { lastMinute: number | null; lastHour: number }
  >(STATS_SQL.finishedSince);
  const nodesByState = db.prepare<
    { now: number; leaseTtlMs: number },
    { state: "ready" | "draining" | "lost"; n: number }
  >(STATS_SQL.nodesByState);

  const itemsByState = db.prepare<[], { state: JobState; n: number }>(STATS_SQL.itemsByState);
  const batchesByState = db.prepare<
    [],
    { state: "active" | "succeeded" | "failed" | "cancelled"; n: number }
  >(STATS_SQL.batchesByState);

  // One read transaction: every count is taken from the same snapshot.
  return db.transaction(function stats(now: number): ClusterStats {
    const jobs = { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const { state, n } of jobsByState.all()) jobs[state] = n;
    const finished = finishedSince.get({ minuteAgo: now - MINUTE_MS, hourAgo: now - HOUR_MS });
    const nodes = { ready: 0, draining: 0, lost: 0 };
    for (const { state, n } of nodesByState.all({ now, leaseTtlMs: settings.leaseTtlMs })) {
      nodes[state] = n;
    }
    const batchItems = { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const { state, n } of itemsByState.all()) batchItems[state] = n;
    const batches = { active: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const { state, n } of batchesByState.all()) batches[state] = n;
    return {
      at: new Date(now).toISOString(),
      jobs,
      finished: { lastMinute: finished?.lastMinute ?? 0, lastHour: finished?.lastHour ?? 0 },
      nodes,
      batches,
      batchItems,
    };
  });
}
