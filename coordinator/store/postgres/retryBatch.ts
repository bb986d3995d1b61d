import { notFound } from "../../errors.js";
import { changes, type PgContext, query, writeTransaction } from "./database.js";

const LOCK = "SELECT retries FROM batches WHERE id = $1 FOR UPDATE";
// lease_id goes: a late result of the failed run is refused as stale.
const REQUEUE_FAILED = `UPDATE jobs SET state = 'queued', outcome = NULL, finished_at = NULL,
    started_at = NULL, leased_at = NULL, attempts = 0, retries_left = $2, agent_id = NULL,
    node = NULL, lease_id = NULL, lease_expires_at = NULL, completed_lease_id = NULL
  WHERE batch_id = $1 AND state = 'failed'`;
// A cancelled batch whose failed items are retried runs again, for them.
const REOPEN = `UPDATE batches SET finished_at = NULL, final_state = NULL, final_counts = NULL,
    cancelled_at = NULL
  WHERE id = $1`;

/**
 * Queues the batch's failed items again, each as if new (attempts and
 * program retries start over); succeeded and cancelled items stay as they
 * are. The batch is unfinished again until they end.
 */
export function prepareRetryBatch({ sql }: PgContext) {
  return (batchId: string): Promise<number> =>
    writeTransaction(sql, async (tx) => {
      const [batch] = await query<{ retries: number }>(tx, LOCK, [batchId]);
      if (!batch) throw notFound(`batch ${batchId}`);
      const requeued = await changes(tx, REQUEUE_FAILED, [batchId, batch.retries]);
      if (requeued > 0) await query(tx, REOPEN, [batchId]);
      return requeued;
    });
}
