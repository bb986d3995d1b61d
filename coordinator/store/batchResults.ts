import { type ItemResult, isTerminal, type JobState, type Outcome } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import type { StoreContext } from "./database.js";
import type { BatchResults, BatchResultsOptions } from "./interfaces.js";

/** Lines per read at most, and bytes of outcomes: a stream never holds a whole batch. */
export const MAX_LINES = 1_000;
export const MAX_BYTES = 4 * 1024 * 1024;

export interface ItemRow {
  id: string;
  item_index: number;
  state: JobState;
  outcome: string | null;
}

/** The line of one terminal item; its logs stay on the job (`GET /v1/jobs/:id`). */
export function toLine(row: ItemRow): ItemResult {
  const outcome = JSON.parse(row.outcome ?? "null") as Outcome;
  return outcome.ok
    ? {
        index: row.item_index,
        ok: true,
        result: outcome.result,
        stats: outcome.stats,
        jobId: row.id,
      }
    : {
        index: row.item_index,
        ok: false,
        error: outcome.error,
        stats: outcome.stats,
        jobId: row.id,
      };
}

export function prepareBatchResults({ db }: StoreContext) {
  const batch = db.prepare<[string], { total: number; finished_at: number | null }>(
    "SELECT total, finished_at FROM batches WHERE id = ?",
  );
  // In index order: the rows from `from` on, read only as far as they are done.
  const fromIndex = db.prepare<[string, number, number], ItemRow>(
    `SELECT id, item_index, state, outcome FROM jobs
     WHERE batch_id = ? AND item_index >= ? ORDER BY item_index LIMIT ?`,
  );
  // In completion order, through jobs_by_batch_finished. An item that ended
  // in this very millisecond waits for the next read, so an item ending
  // later can never sort before a line already sent.
  const byCompletion = db.prepare<
    { batchId: string; before: number; limit: number; offset: number },
    ItemRow
  >(
    `SELECT id, item_index, state, outcome FROM jobs
     WHERE batch_id = @batchId AND finished_at IS NOT NULL AND finished_at < @before
     ORDER BY finished_at, item_index LIMIT @limit OFFSET @offset`,
  );

  return db.transaction(function batchResults(
    batchId: string,
    { from, order }: BatchResultsOptions,
    now: number,
  ): BatchResults {
    const head = batch.get(batchId);
    if (!head) throw notFound(`batch ${batchId}`);
    const finished = head.finished_at !== null;
    const rows =
      order === "index"
        ? fromIndex.iterate(batchId, from, MAX_LINES)
        : byCompletion.iterate({
            batchId,
            before: finished ? Number.MAX_SAFE_INTEGER : now,
            limit: MAX_LINES,
            offset: from,
          });
    const lines: ItemResult[] = [];
    let bytes = 0;
    for (const row of rows) {
      if (!isTerminal(row.state) || (lines.length > 0 && bytes > MAX_BYTES)) break;
      bytes += row.outcome?.length ?? 0;
      lines.push(toLine(row));
    }
    const sent = from + lines.length;
    // Every line is sent once every item is terminal and the reader reached the end.
    return { lines, total: head.total, complete: sent >= head.total && finished };
  });
}
