import type { Batch, BatchCounts, BatchPage } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import { BATCH_COLUMNS, type BatchRow, batchOf } from "../getBatch.js";
import type { ListBatchesOptions } from "../interfaces.js";
import { decodeCursor, encodeCursor } from "../rows.js";
import { type PgContext, type Queryable, query, readSnapshot } from "./database.js";
import { countBatch } from "./settleBatches.js";

// isolate as 0/1, as the SQLite row has it, so both stores build a Batch alike.
const COLUMNS = BATCH_COLUMNS.replace("isolate", "isolate::int AS isolate");
const BY_ID = `SELECT ${COLUMNS} FROM batches WHERE id = $1`;
const PAGE = `SELECT ${COLUMNS} FROM batches WHERE seq < $1 ORDER BY seq DESC LIMIT $2`;
// One user's, through batches_by_owner.
const OWN_PAGE = `SELECT ${COLUMNS} FROM batches WHERE owner = $3 AND seq < $1
  ORDER BY seq DESC LIMIT $2`;

/** A batch read on `on`; NOT_FOUND when there is none. */
export type GetBatch = (id: string, on?: Queryable) => Promise<Batch>;

export function prepareGetBatch({ sql }: PgContext) {
  const toBatch = async (on: Queryable, row: BatchRow): Promise<Batch> =>
    batchOf(
      row,
      row.final_counts !== null
        ? (JSON.parse(row.final_counts) as BatchCounts)
        : await countBatch(on, row.id),
    );

  const readBatch = async (on: Queryable, id: string): Promise<Batch> => {
    const [row] = await query<BatchRow>(on, BY_ID, [id]);
    if (!row) throw notFound(`batch ${id}`);
    return toBatch(on, row);
  };

  /** Inside a verb's transaction, on it; alone, the row and its counts from one snapshot. */
  const getBatch: GetBatch = (id, on) =>
    on ? readBatch(on, id) : readSnapshot(sql, (tx) => readBatch(tx, id));

  const listBatches = ({ owner, limit, cursor }: ListBatchesOptions): Promise<BatchPage> =>
    readSnapshot(sql, async (tx) => {
      const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
      const rows =
        owner === undefined
          ? await query<BatchRow>(tx, PAGE, [before, limit + 1])
          : await query<BatchRow>(tx, OWN_PAGE, [before, limit + 1, owner]);
      const shown = rows.slice(0, limit);
      const last = shown.at(-1);
      const batches: Batch[] = [];
      for (const row of shown) batches.push(await toBatch(tx, row));
      return {
        batches,
        ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
      };
    });

  return { getBatch, listBatches };
}
