import type { Batch } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import type { CancelledBatch } from "./interfaces.js";
import { coordinatorOutcome } from "./rows.js";
import type { SettleBatches } from "./settleBatches.js";

/**
 * Cancels every item still queued, leased or running, at once and in one
 * transaction. Agents holding leases of its items are told to stop them on
 * their next heartbeat (the lease is no longer current), and their late
 * results are refused as stale, as for a single job's cancel.
 */
export function prepareCancelBatch(
  { db }: StoreContext,
  getBatch: (id: string) => Batch,
  settleBatches: SettleBatches,
) {
  const find = db.prepare<[string], { cancelled_at: number | null }>(
    "SELECT cancelled_at FROM batches WHERE id = ?",
  );
  const markBatch = db.prepare("UPDATE batches SET cancelled_at = ? WHERE id = ?");
  const inFlight = db.prepare<{ batchId: string; now: number }, { id: string; since: number }>(
    `SELECT id, COALESCE(started_at, leased_at, @now) AS since FROM jobs
     WHERE batch_id = @batchId AND state IN ('queued', 'leased', 'running')`,
  );
  const markItem = db.prepare(
    `UPDATE jobs SET state = 'cancelled', outcome = @outcome, finished_at = @now,
       lease_expires_at = NULL
     WHERE id = @id`,
  );

  return writeTransaction(db, function cancelBatch(batchId: string, now: number): CancelledBatch {
    const batch = find.get(batchId);
    if (!batch) throw notFound(`batch ${batchId}`);
    if (batch.cancelled_at === null) markBatch.run(now, batchId);
    const cancelled: string[] = [];
    for (const item of inFlight.all({ batchId, now })) {
      markItem.run({
        id: item.id,
        now,
        outcome: coordinatorOutcome("CANCELLED", "the batch was cancelled", now - item.since),
      });
      cancelled.push(item.id);
    }
    settleBatches([batchId], now);
    return { batch: getBatch(batchId), cancelled };
  });
}
