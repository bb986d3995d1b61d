import { notFound } from "../../errors.js";
import type { CancelledBatch } from "../interfaces.js";
import { coordinatorOutcome } from "../rows.js";
import { type PgContext, query, textArray, writeTransaction } from "./database.js";
import type { GetBatch } from "./getBatch.js";
import { settleBatches } from "./settleBatches.js";

const LOCK = "SELECT cancelled_at FROM batches WHERE id = $1 FOR UPDATE";
const MARK_BATCH = "UPDATE batches SET cancelled_at = $2 WHERE id = $1";
const IN_FLIGHT = `SELECT id, COALESCE(started_at, leased_at, $2) AS since FROM jobs
  WHERE batch_id = $1 AND state IN ('queued', 'leased', 'running') ORDER BY seq FOR UPDATE`;
// Every item in flight in one statement, each with its own outcome (its duration).
const CANCEL_ITEMS = `UPDATE jobs SET state = 'cancelled', finished_at = $3, lease_expires_at = NULL,
    outcome = item.outcome
  FROM unnest($1::text[], $2::text[]) AS item(id, outcome)
  WHERE jobs.id = item.id`;

/**
 * Cancels every item still queued, leased or running, at once and in one
 * transaction. Agents holding leases of its items are told to stop them on
 * their next heartbeat (the lease is no longer current), and their late
 * results are refused as stale, as for a single job's cancel.
 */
export function prepareCancelBatch({ sql }: PgContext, getBatch: GetBatch) {
  return (batchId: string, now: number): Promise<CancelledBatch> =>
    writeTransaction(sql, async (tx) => {
      const [batch] = await query<{ cancelled_at: number | null }>(tx, LOCK, [batchId]);
      if (!batch) throw notFound(`batch ${batchId}`);
      if (batch.cancelled_at === null) await query(tx, MARK_BATCH, [batchId, now]);
      const items = await query<{ id: string; since: number }>(tx, IN_FLIGHT, [batchId, now]);
      const cancelled = items.map((item) => item.id);
      const outcomes = items.map((item) =>
        coordinatorOutcome("CANCELLED", "the batch was cancelled", now - item.since),
      );
      await query(tx, CANCEL_ITEMS, [textArray(tx, cancelled), textArray(tx, outcomes), now]);
      await settleBatches(tx, [batchId], now);
      return { batch: await getBatch(batchId, tx), cancelled };
    });
}
