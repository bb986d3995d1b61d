import { type StoreContext, writeTransaction } from "./database.js";

/** Deleted per call at most, so one prune never holds the write lock for long. */
const BATCH = 5_000;

/**
 * Retention: deletes terminal jobs that finished before `before` (their
 * program, input, result and logs go with them); queued and running jobs are
 * never touched. Returns how many it deleted; call again while it returns
 * a full batch.
 */
export function preparePruneFinished({ db }: StoreContext) {
  const prune = db.prepare(
    `DELETE FROM jobs WHERE seq IN (
       SELECT seq FROM jobs
       WHERE finished_at IS NOT NULL AND finished_at < @before
         AND state IN ('succeeded', 'failed', 'cancelled')
       LIMIT @batch)`,
  );
  return writeTransaction(db, function pruneFinished(before: number): number {
    return prune.run({ before, batch: BATCH }).changes;
  });
}
