import type { FailedItem, Outcome } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";
import type { BatchFailures } from "./interfaces.js";

/** The statements of `batchFailures`, exported so a test can check their query plans. */
export const BATCH_FAILURES_SQL = {
  // Items are inserted in index order, so seq order is index order: the
  // (batch_id, state) index gives them sorted, and only `limit` rows are read.
  failed: `SELECT id, item_index, outcome FROM jobs INDEXED BY jobs_by_batch_state
    WHERE batch_id = ? AND state = 'failed' ORDER BY seq LIMIT ?`,
  // From jobs_by_batch_finished alone.
  finishedSince: `SELECT COUNT(*) FROM jobs INDEXED BY jobs_by_batch_finished
    WHERE batch_id = ? AND finished_at IS NOT NULL AND finished_at >= ?`,
};

/**
 * A batch's failed items with the lowest indexes (at most `limit`, and
 * whether there are more), and how many items ended since `since`.
 */
export function prepareBatchFailures({ db }: StoreContext) {
  const failed = db.prepare<[string, number], { id: string; item_index: number; outcome: string }>(
    BATCH_FAILURES_SQL.failed,
  );
  const finishedSince = db.prepare<[string, number], number>(BATCH_FAILURES_SQL.finishedSince);
  finishedSince.pluck();
  // One read transaction: the list and the count are from the same snapshot.
  return db.transaction(function batchFailures(
    batchId: string,
    { limit, since }: { limit: number; since: number },
  ): BatchFailures {
    const rows = failed.all(batchId, limit + 1);
    const items: FailedItem[] = [];
    for (const row of rows.slice(0, limit)) {
      // The detail (a stack, say) stays on the job: the page links to it.
      const outcome = JSON.parse(row.outcome) as Outcome;
      if (outcome.ok) continue;
      const { code, message } = outcome.error;
      items.push({ index: row.item_index, jobId: row.id, error: { code, message } });
    }
    return {
      items,
      more: rows.length > limit,
      finishedSince: finishedSince.get(batchId, since) ?? 0,
    };
  });
}
