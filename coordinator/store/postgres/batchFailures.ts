import type { FailedItem, Outcome } from "../../../protocol/index.js";
import type { BatchFailures } from "../interfaces.js";
import { type PgContext, query, readSnapshot } from "./database.js";

/** The statements of `batchFailures`, exported so a test can check their plans. */
export const PG_BATCH_FAILURES_SQL = {
  // jobs_failed_items (batch_id, item_index) WHERE state = 'failed': the
  // failed items already in index order, so only `limit` entries are read,
  // however many of the batch's items ended otherwise. (SQLite gets the same
  // from (batch_id, state), whose entries end with the rowid.)
  failed: `SELECT id, item_index, outcome FROM jobs
    WHERE batch_id = $1 AND state = 'failed' ORDER BY item_index LIMIT $2`,
  // From jobs_by_batch_finished alone.
  finishedSince: `SELECT COUNT(*) AS n FROM jobs
    WHERE batch_id = $1 AND finished_at IS NOT NULL AND finished_at >= $2`,
};

/**
 * A batch's failed items with the lowest indexes (at most `limit`, and
 * whether there are more), and how many items ended since `since`, from one
 * snapshot.
 */
export function prepareBatchFailures({ sql }: PgContext) {
  return (batchId: string, { limit, since }: { limit: number; since: number }) =>
    readSnapshot(sql, async (tx): Promise<BatchFailures> => {
      const [rows, [count]] = await Promise.all([
        query<{ id: string; item_index: number; outcome: string }>(
          tx,
          PG_BATCH_FAILURES_SQL.failed,
          [batchId, limit + 1],
        ),
        query<{ n: number }>(tx, PG_BATCH_FAILURES_SQL.finishedSince, [batchId, since]),
      ]);
      const items: FailedItem[] = [];
      for (const row of rows.slice(0, limit)) {
        // The detail (a stack, say) stays on the job: the page links to it.
        const outcome = JSON.parse(row.outcome) as Outcome;
        if (outcome.ok) continue;
        const { code, message } = outcome.error;
        items.push({ index: row.item_index, jobId: row.id, error: { code, message } });
      }
      return { items, more: rows.length > limit, finishedSince: count?.n ?? 0 };
    });
}
