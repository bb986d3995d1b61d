import type { BatchCounts, BatchState } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";

/** Items by state, from the jobs_by_batch_state index alone (no row is read). */
export const BATCH_COUNTS_SQL = `SELECT state, COUNT(*) AS n FROM jobs
  WHERE batch_id = ? GROUP BY state`;

export type CountBatch = (batchId: string) => BatchCounts;

export function prepareCountBatch({ db }: StoreContext): CountBatch {
  const byState = db.prepare<[string], { state: string; n: number }>(BATCH_COUNTS_SQL);
  return function countBatch(batchId: string): BatchCounts {
    const counts: BatchCounts = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const { state, n } of byState.all(batchId)) {
      if (state === "leased" || state === "running") counts.running += n;
      else if (state in counts) counts[state as keyof BatchCounts] += n;
    }
    return counts;
  };
}

/**
 * A batch's state once every item is terminal: cancelled when a client
 * cancelled the batch, failed when any item did not succeed, else succeeded.
 */
export function finalState(counts: BatchCounts, cancelled: boolean): BatchState {
  if (cancelled) return "cancelled";
  return counts.failed > 0 || counts.cancelled > 0 ? "failed" : "succeeded";
}

/** Batch ids whose every item is now terminal; called inside the verb's transaction. */
export type SettleBatches = (
  batchIds: Iterable<string | null | undefined>,
  now: number,
) => string[];

/**
 * Marks finished the batches among `batchIds` that have no item left in
 * flight, keeping their final counts (so a list of old batches reads no
 * items). Runs inside the calling verb's write transaction.
 */
export function prepareSettleBatches({ db }: StoreContext, countBatch: CountBatch): SettleBatches {
  const unfinished = db.prepare<[string], { cancelled_at: number | null }>(
    "SELECT cancelled_at FROM batches WHERE id = ? AND finished_at IS NULL",
  );
  const inFlight = db.prepare<[string], number>(
    `SELECT 1 FROM jobs WHERE batch_id = ? AND state IN ('queued', 'leased', 'running') LIMIT 1`,
  );
  const finish = db.prepare(
    `UPDATE batches SET finished_at = @now, final_state = @state, final_counts = @counts
     WHERE id = @id`,
  );
  return function settleBatches(batchIds, now) {
    const settled: string[] = [];
    for (const id of new Set(batchIds)) {
      if (!id) continue;
      const batch = unfinished.get(id);
      if (!batch || inFlight.get(id) !== undefined) continue;
      const counts = countBatch(id);
      finish.run({
        id,
        now,
        state: finalState(counts, batch.cancelled_at !== null),
        counts: JSON.stringify(counts),
      });
      settled.push(id);
    }
    return settled;
  };
}
