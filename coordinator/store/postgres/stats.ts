import type { ClusterStats, JobState } from "../../../protocol/index.js";
import { STATS_SQL } from "../stats.js";
import { type PgContext, query, readSnapshot } from "./database.js";

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;

/** The SQLite store's statements (coordinator/store/stats.ts) in PostgreSQL's words. */
export const PG_STATS_SQL = {
  jobsByState: STATS_SQL.jobsByState,
  finishedSince: `SELECT COUNT(*) FILTER (WHERE finished_at >= $1) AS "lastMinute",
      COUNT(*) AS "lastHour"
    FROM jobs WHERE finished_at >= $2`,
  itemsByState: `SELECT state, COUNT(*) AS n FROM jobs WHERE batch_id IS NOT NULL GROUP BY state`,
  batchesByState: STATS_SQL.batchesByState,
  nodesByState: `SELECT CASE WHEN $1 - last_heartbeat_at > $2 THEN 'lost' ELSE state END AS state,
      COUNT(*) AS n
    FROM agents GROUP BY 1`,
};

export function prepareStats({ sql, settings }: PgContext) {
  // One snapshot: every count is taken from the same moment.
  return (now: number): Promise<ClusterStats> =>
    readSnapshot(sql, async (tx) => {
      const [byState, [finished], byNode, byItem, byBatch] = await Promise.all([
        query<{ state: JobState; n: number }>(tx, PG_STATS_SQL.jobsByState),
        query<{ lastMinute: number; lastHour: number }>(tx, PG_STATS_SQL.finishedSince, [
          now - MINUTE_MS,
          now - HOUR_MS,
        ]),
        query<{ state: "ready" | "draining" | "lost"; n: number }>(tx, PG_STATS_SQL.nodesByState, [
          now,
          settings.leaseTtlMs,
        ]),
        query<{ state: JobState; n: number }>(tx, PG_STATS_SQL.itemsByState),
        query<{ state: "active" | "succeeded" | "failed" | "cancelled"; n: number }>(
          tx,
          PG_STATS_SQL.batchesByState,
        ),
      ]);
      const jobs = { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const { state, n } of byState) jobs[state] = n;
      const nodes = { ready: 0, draining: 0, lost: 0 };
      for (const { state, n } of byNode) nodes[state] = n;
      const batchItems = {
        queued: 0,
        leased: 0,
        running: 0,
        succeeded: 0,
        failed: 0,
        cancelled: 0,
      };
      for (const { state, n } of byItem) batchItems[state] = n;
      const batches = { active: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const { state, n } of byBatch) batches[state] = n;
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
