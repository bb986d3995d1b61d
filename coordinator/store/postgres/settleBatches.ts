import type { BatchCounts } from "../../../protocol/index.js";
import { BATCH_COUNTS_SQL, finalState } from "../settleBatches.js";
import { type Queryable, query } from "./database.js";

const COUNTS = BATCH_COUNTS_SQL.replace("?", "$1");
// FOR UPDATE: two coordinators ending a batch's last two items at once take
// this lock in turn, and the second's in-flight check (a later statement, so
// a newer snapshot) sees the first's item ended: one of them settles it.
const LOCK_UNFINISHED = `SELECT cancelled_at FROM batches
  WHERE id = $1 AND finished_at IS NULL FOR UPDATE`;
const IN_FLIGHT = `SELECT 1 FROM jobs
  WHERE batch_id = $1 AND state IN ('queued', 'leased', 'running') LIMIT 1`;
const FINISH = `UPDATE batches SET finished_at = $2, final_state = $3, final_counts = $4
  WHERE id = $1`;

/** Items by state (from jobs_by_batch_state), read on `on`. */
export async function countBatch(on: Queryable, batchId: string): Promise<BatchCounts> {
  const counts: BatchCounts = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const { state, n } of await query<{ state: string; n: number }>(on, COUNTS, [batchId])) {
    if (state === "leased" || state === "running") counts.running += n;
    else if (state in counts) counts[state as keyof BatchCounts] += n;
  }
  return counts;
}

/**
 * Marks finished the batches among `batchIds` that have no item left in
 * flight, keeping their final counts; runs inside the calling verb's
 * transaction `tx`. Returns the ids it settled.
 */
export async function settleBatches(
  tx: Queryable,
  batchIds: Iterable<string | null | undefined>,
  now: number,
): Promise<string[]> {
  return settleProbed(tx, probeBatches(tx, batchIds), now);
}

/** What probeBatches read of one batch: whether it is unfinished (locked) and has items in flight. */
export type BatchProbe = Promise<{
  id: string;
  cancelledAt: number | null;
  inFlight: boolean;
} | null>;

/**
 * Sends each batch's lock and in-flight check at once, without waiting:
 * the statements run in the order sent on the transaction's connection, so
 * each check still runs after its lock is held (a newer snapshot), and a
 * caller may send its own writes first and pay one round trip for all.
 * Sorted: two verbs settling the same batches lock them in one order.
 */
export function probeBatches(
  tx: Queryable,
  batchIds: Iterable<string | null | undefined>,
): BatchProbe[] {
  const ids = [...new Set(batchIds)].filter((id): id is string => !!id).sort();
  return ids.map(async (id) => {
    const [locked, inFlight] = await Promise.all([
      query<{ cancelled_at: number | null }>(tx, LOCK_UNFINISHED, [id]),
      query(tx, IN_FLIGHT, [id]),
    ]);
    const batch = locked[0];
    return batch ? { id, cancelledAt: batch.cancelled_at, inFlight: inFlight.length > 0 } : null;
  });
}

/** Settles the probed batches that are unfinished with nothing in flight; returns their ids. */
export async function settleProbed(
  tx: Queryable,
  probes: readonly BatchProbe[],
  now: number,
): Promise<string[]> {
  const settled: string[] = [];
  for (const probe of await Promise.all(probes)) {
    if (!probe || probe.inFlight) continue;
    const counts = await countBatch(tx, probe.id);
    await query(tx, FINISH, [
      probe.id,
      now,
      finalState(counts, probe.cancelledAt !== null),
      JSON.stringify(counts),
    ]);
    settled.push(probe.id);
  }
  return settled;
}
