import { type StoreContext, writeTransaction } from "./database.js";

/** Deleted per call at most, so one prune never holds the write lock for long. */
const BATCH = 5_000;

/**
 * Retention: deletes terminal jobs that finished before `before` (their
 * program, input, result and logs go with them); queued and running jobs are
 * never touched. A batch goes as a whole, with its items, once the batch
 * itself finished before `before`: an item is never pruned from a batch
 * that is still running or streaming. Returns how many rows it deleted;
 * call again while it returns a full batch.
 */
export function preparePruneFinished({ db }: StoreContext) {
  const pruneSingles = db.prepare(
    `DELETE FROM jobs WHERE seq IN (
       SELECT seq FROM jobs
       WHERE finished_at IS NOT NULL AND finished_at < @before
         AND state IN ('succeeded', 'failed', 'cancelled') AND batch_id IS NULL
       LIMIT @batch)`,
  );
  const oldBatch = db
    .prepare<[number], string>(
      "SELECT id FROM batches WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT 1",
    )
    .pluck();
  const pruneItems = db.prepare(
    `DELETE FROM jobs WHERE seq IN (
       SELECT seq FROM jobs WHERE batch_id = @batchId LIMIT @batch)`,
  );
  const dropBatch = db.prepare("DELETE FROM batches WHERE id = ?");
  return writeTransaction(db, function pruneFinished(before: number): number {
    const singles = pruneSingles.run({ before, batch: BATCH }).changes;
    if (singles >= BATCH) return singles;
    const batchId = oldBatch.get(before);
    if (batchId === undefined) return singles;
    // The batch row goes last, with its last items, so a batch is never seen without them.
    const items = pruneItems.run({ batchId, batch: BATCH - singles }).changes;
    if (items < BATCH - singles) dropBatch.run(batchId);
    return singles + items + (items < BATCH - singles ? 1 : 0);
  });
}
