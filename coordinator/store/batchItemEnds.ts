import type { JobState } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";
import type { BatchItemEnd, BatchItemEndsOptions } from "./interfaces.js";

/** The statement of `batchItemEnds`, exported so a test can check its query plan. */
export const BATCH_ITEM_ENDS_SQL = `SELECT item_index, finished_at, started_at, state,
    outcome ->> '$.stats.durationMs' AS duration_ms
  FROM jobs INDEXED BY jobs_by_batch_finished
  WHERE batch_id = @batchId AND finished_at IS NOT NULL AND finished_at < @before
    AND (finished_at, item_index) > (@afterAt, @afterIndex)
  ORDER BY finished_at, item_index LIMIT @limit`;

interface EndRow {
  item_index: number;
  finished_at: number;
  started_at: number | null;
  state: JobState;
  duration_ms: number | null;
}

/**
 * A page of a batch's finished items in the order they ended, after a
 * cursor, through jobs_by_batch_finished: a reader that keeps the cursor
 * reads each item once however often it asks. Only items that ended before
 * `before` (a read's own millisecond is left for the next read), so an item
 * ending later never sorts before the cursor. Reads the duration out of the
 * outcome in SQLite, never the result or logs into JavaScript.
 */
export function prepareBatchItemEnds({ db }: StoreContext) {
  const page = db.prepare<
    { batchId: string; before: number; afterAt: number; afterIndex: number; limit: number },
    EndRow
  >(BATCH_ITEM_ENDS_SQL);
  return function batchItemEnds(
    batchId: string,
    { after, before, limit }: BatchItemEndsOptions,
  ): BatchItemEnd[] {
    const rows = page.all({
      batchId,
      before,
      afterAt: after?.finishedAt ?? Number.MIN_SAFE_INTEGER,
      afterIndex: after?.index ?? -1,
      limit,
    });
    return rows.map((row) => ({
      index: row.item_index,
      finishedAt: row.finished_at,
      startedAt: row.started_at,
      state: row.state,
      durationMs: typeof row.duration_ms === "number" ? row.duration_ms : null,
    }));
  };
}
