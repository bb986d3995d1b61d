import { notFound } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";

/**
 * Queues the batch's failed items again, each as if new (attempts and
 * program retries start over); succeeded and cancelled items stay as they
 * are. The batch is unfinished again until they end (a cancelled batch too:
 * its retried items run).
 */
export function prepareRetryBatch({ db }: StoreContext) {
  const find = db.prepare<[string], { retries: number }>(
    "SELECT retries FROM batches WHERE id = ?",
  );
  // lease_id goes: a late result of the failed run is refused as stale.
  const requeueFailed = db.prepare(
    `UPDATE jobs SET state = 'queued', outcome = NULL, finished_at = NULL, started_at = NULL,
       leased_at = NULL, attempts = 0, retries_left = @retries, agent_id = NULL, node = NULL,
       lease_id = NULL, lease_expires_at = NULL, completed_lease_id = NULL
     WHERE batch_id = @batchId AND state = 'failed'`,
  );
  const reopen = db.prepare(
    // A cancelled batch whose failed items are retried runs again, for them.
    `UPDATE batches SET finished_at = NULL, final_state = NULL, final_counts = NULL,
       cancelled_at = NULL
     WHERE id = ?`,
  );

  return writeTransaction(db, function retryBatch(batchId: string): number {
    const batch = find.get(batchId);
    if (!batch) throw notFound(`batch ${batchId}`);
    const requeued = requeueFailed.run({ batchId, retries: batch.retries }).changes;
    if (requeued > 0) reopen.run(batchId);
    return requeued;
  });
}
