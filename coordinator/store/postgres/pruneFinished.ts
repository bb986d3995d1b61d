import { changes, type PgContext, query, writeTransaction } from "./database.js";

/** Deleted per call at most, so one prune never holds many row locks for long. */
const BATCH = 5_000;

const PRUNE_SINGLES = `DELETE FROM jobs WHERE seq IN (
    SELECT seq FROM jobs
    WHERE finished_at IS NOT NULL AND finished_at < $1
      AND state IN ('succeeded', 'failed', 'cancelled') AND batch_id IS NULL
    LIMIT $2)`;
// SKIP LOCKED: a batch another coordinator is pruning right now is left to it.
const OLD_BATCH = `SELECT id FROM batches WHERE finished_at IS NOT NULL AND finished_at < $1
  LIMIT 1 FOR UPDATE SKIP LOCKED`;
const PRUNE_ITEMS = `DELETE FROM jobs WHERE seq IN (
    SELECT seq FROM jobs WHERE batch_id = $1 LIMIT $2)`;
const DROP_BATCH = "DELETE FROM batches WHERE id = $1";

/**
 * Retention, as the SQLite store's: terminal single jobs that finished
 * before `before`, and a finished batch as a whole, with its items, up to a
 * batch of rows per call (the batch row goes last, with its last items).
 * Returns how many rows it deleted; call again while it returns a full batch.
 */
export function preparePruneFinished({ sql }: PgContext) {
  return (before: number): Promise<number> =>
    writeTransaction(sql, async (tx) => {
      const singles = await changes(tx, PRUNE_SINGLES, [before, BATCH]);
      if (singles >= BATCH) return singles;
      const [batch] = await query<{ id: string }>(tx, OLD_BATCH, [before]);
      if (!batch) return singles;
      const items = await changes(tx, PRUNE_ITEMS, [batch.id, BATCH - singles]);
      if (items < BATCH - singles) await query(tx, DROP_BATCH, [batch.id]);
      return singles + items + (items < BATCH - singles ? 1 : 0);
    });
}
