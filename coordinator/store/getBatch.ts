import type { Batch, BatchCounts, BatchPage, BatchState, Runtime } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import type { StoreContext } from "./database.js";
import type { ListBatchesOptions } from "./interfaces.js";
import { decodeCursor, encodeCursor, storedLimits } from "./rows.js";
import type { CountBatch } from "./settleBatches.js";

/** The columns a Batch is built from; never the (large) source. */
export const BATCH_COLUMNS = `seq, id, filename, runtime, limits, labels, total, max_parallel, retries, isolate,
  created_at, finished_at, final_state, final_counts, owner`;

export interface BatchRow {
  seq: number;
  id: string;
  filename: string;
  runtime: Runtime;
  limits: string;
  labels: string;
  total: number;
  max_parallel: number | null;
  retries: number;
  isolate: number;
  created_at: number;
  finished_at: number | null;
  final_state: BatchState | null;
  final_counts: string | null;
  owner: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** An unfinished batch is queued until one of its items has been leased. */
function activeState(counts: BatchCounts): BatchState {
  const started = counts.running + counts.succeeded + counts.failed + counts.cancelled;
  return started === 0 ? "queued" : "running";
}

/** A batch row and its counts as the API returns it (protocol `Batch`; both stores). */
export function batchOf(row: BatchRow, counts: BatchCounts): Batch {
  return {
    id: row.id,
    state: row.final_state ?? activeState(counts),
    total: row.total,
    counts,
    filename: row.filename,
    runtime: row.runtime,
    createdAt: iso(row.created_at),
    ...(row.finished_at !== null ? { finishedAt: iso(row.finished_at) } : {}),
    limits: storedLimits(row.limits),
    labels: JSON.parse(row.labels) as Record<string, string>,
    ...(row.max_parallel !== null ? { maxParallel: row.max_parallel } : {}),
    retries: row.retries,
    isolate: row.isolate === 1,
    owner: row.owner,
  };
}

export function prepareGetBatch({ db }: StoreContext, countBatch: CountBatch) {
  const byId = db.prepare<[string], BatchRow>(`SELECT ${BATCH_COLUMNS} FROM batches WHERE id = ?`);
  const page = db.prepare<[number, number], BatchRow>(
    `SELECT ${BATCH_COLUMNS} FROM batches WHERE seq < ? ORDER BY seq DESC LIMIT ?`,
  );
  const ownPage = db.prepare<[string, number, number], BatchRow>(
    `SELECT ${BATCH_COLUMNS} FROM batches INDEXED BY batches_by_owner
     WHERE owner = ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );

  const toBatch = (row: BatchRow): Batch =>
    batchOf(
      row,
      row.final_counts !== null
        ? (JSON.parse(row.final_counts) as BatchCounts)
        : countBatch(row.id),
    );

  // One read transaction: the row and its counts are from the same snapshot.
  const getBatch = db.transaction(function getBatch(id: string): Batch {
    const row = byId.get(id);
    if (!row) throw notFound(`batch ${id}`);
    return toBatch(row);
  });

  const listBatches = db.transaction(function listBatches({
    owner,
    limit,
    cursor,
  }: ListBatchesOptions): BatchPage {
    const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
    const rows =
      owner === undefined ? page.all(before, limit + 1) : ownPage.all(owner, before, limit + 1);
    const shown = rows.slice(0, limit);
    const last = shown.at(-1);
    return {
      batches: shown.map(toBatch),
      ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
    };
  });

  return { getBatch, listBatches };
}
