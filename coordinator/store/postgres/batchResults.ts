import { type ItemResult, isTerminal } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import { type ItemRow, MAX_BYTES, MAX_LINES, toLine } from "../batchResults.js";
import type { BatchResults, BatchResultsOptions } from "../interfaces.js";
import { type PgContext, query, readSnapshot } from "./database.js";

const HEAD = "SELECT total, finished_at FROM batches WHERE id = $1";
// In index order: the rows from `from` on, read only as far as they are done.
const FROM_INDEX = `SELECT id, item_index, state, outcome FROM jobs
  WHERE batch_id = $1 AND item_index >= $2 ORDER BY item_index LIMIT $3`;
// In completion order, through jobs_by_batch_finished. An item that ended
// in this very millisecond waits for the next read, so an item ending
// later can never sort before a line already sent.
const BY_COMPLETION = `SELECT id, item_index, state, outcome FROM jobs
  WHERE batch_id = $1 AND finished_at IS NOT NULL AND finished_at < $2
  ORDER BY finished_at, item_index LIMIT $3 OFFSET $4`;

export function prepareBatchResults({ sql }: PgContext) {
  /** The batch's head and its lines from one snapshot. */
  return (
    batchId: string,
    { from, order }: BatchResultsOptions,
    now: number,
  ): Promise<BatchResults> =>
    readSnapshot(sql, async (tx) => {
      const [head] = await query<{ total: number; finished_at: number | null }>(tx, HEAD, [
        batchId,
      ]);
      if (!head) throw notFound(`batch ${batchId}`);
      const finished = head.finished_at !== null;
      const rows =
        order === "index"
          ? await query<ItemRow>(tx, FROM_INDEX, [batchId, from, MAX_LINES])
          : await query<ItemRow>(tx, BY_COMPLETION, [
              batchId,
              finished ? Number.MAX_SAFE_INTEGER : now,
              MAX_LINES,
              from,
            ]);
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
