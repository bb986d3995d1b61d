import type { JobState } from "../../../protocol/index.js";
import type { BatchItemEnd, BatchItemEndsOptions } from "../interfaces.js";
import { type PgContext, query } from "./database.js";

/**
 * The SQLite statement (coordinator/store/batchItemEnds.ts) in PostgreSQL's
 * words, exported so a test can check its plan: a range of
 * jobs_by_batch_finished (batch_id, finished_at, item_index) from the
 * cursor on, in that index's order, so only `limit` entries are read. The
 * duration is taken out of the outcome on the server; a row whose
 * durationMs is not a number gives null, as in SQLite.
 */
export const PG_BATCH_ITEM_ENDS_SQL = `SELECT item_index, finished_at, started_at, state,
    CASE WHEN json_typeof(outcome::json #> '{stats,durationMs}') = 'number'
      THEN (outcome::json #>> '{stats,durationMs}')::float8 END AS duration_ms
  FROM jobs
  WHERE batch_id = $1 AND finished_at IS NOT NULL AND finished_at < $2
    AND (finished_at, item_index) > ($3, $4)
  ORDER BY finished_at, item_index LIMIT $5`;

interface EndRow {
  item_index: number;
  finished_at: number;
  started_at: number | null;
  state: JobState;
  duration_ms: number | null;
}

/**
 * A page of a batch's finished items in the order they ended, after a
 * cursor; only items that ended before `before`, so an item ending later
 * never sorts before the cursor (the SQLite verb's reasoning).
 */
export function prepareBatchItemEnds({ sql }: PgContext) {
  return async function batchItemEnds(
    batchId: string,
    { after, before, limit }: BatchItemEndsOptions,
  ): Promise<BatchItemEnd[]> {
    const rows = await query<EndRow>(sql, PG_BATCH_ITEM_ENDS_SQL, [
      batchId,
      before,
      after?.finishedAt ?? Number.MIN_SAFE_INTEGER,
      after?.index ?? -1,
      limit,
    ]);
    return rows.map((row) => ({
      index: row.item_index,
      finishedAt: row.finished_at,
      startedAt: row.started_at,
      state: row.state,
      durationMs: row.duration_ms,
    }));
  };
}
