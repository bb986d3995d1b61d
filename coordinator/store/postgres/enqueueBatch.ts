import {
  DEFAULT_USER,
  type JobLimits,
  type NewBatch,
  resolveProgram,
  type SubmitBatchResponse,
} from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { itemId, newId, programName, storedProgram } from "../rows.js";
import { type PgContext, query, textArray, writeTransaction } from "./database.js";
import { checkQueuedQuotaAfterInsert } from "./users.js";

const INSERT_BATCH = `INSERT INTO batches (id, source, files, filename, runtime, limits, labels,
    total, max_parallel, retries, isolate, created_at, owner)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`;
// A chunk of items in one statement: their ids and inputs as two arrays,
// unnested side by side; everything else is the batch's. The index is the
// chunk's start plus the position in the arrays.
const INSERT_ITEMS = `INSERT INTO jobs (id, state, source, filename, runtime, input, limits, labels,
    max_attempts, created_at, batch_id, item_index, retries_left, owner)
  SELECT item.id, 'queued', '', $3, $4, item.input, $5, $6, $7, $8, $9,
    $10 + item.position - 1, $11, $12
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS item(id, input, position)`;

/** Items per statement: big enough to cost one round trip per many items, small enough to bound a message. */
const CHUNK = 5_000;

/**
 * Queues a batch and all its items in one transaction: either every item is
 * queued or none is (a max-queued refusal included). The program is stored once, in the batch row.
 */
export function prepareEnqueueBatch({ sql, settings }: PgContext) {
  return async function enqueueBatch(
    batch: NewBatch,
    limits: JobLimits,
    now: number,
    owner: string = DEFAULT_USER,
  ): Promise<SubmitBatchResponse> {
    const { spec, inputs } = batch;
    // The schema refuses a file name and runtime that disagree; this only fills them in.
    const program = resolveProgram(programName(spec));
    if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
    const id = newId("b");
    const limitsText = JSON.stringify(limits);
    const labelsText = JSON.stringify(spec.labels ?? {});
    const { source, files } = storedProgram(spec);
    await writeTransaction(sql, async (tx) => {
      await query(tx, INSERT_BATCH, [
        id,
        source,
        files,
        program.filename,
        program.runtime,
        limitsText,
        labelsText,
        inputs.length,
        spec.maxParallel ?? null,
        spec.retries,
        spec.isolate,
        now,
        owner,
      ]);
      for (let start = 0; start < inputs.length; start += CHUNK) {
        const chunk = inputs.slice(start, start + CHUNK);
        await query(tx, INSERT_ITEMS, [
          textArray(
            tx,
            chunk.map((_, offset) => itemId(id, start + offset)),
          ),
          textArray(tx, chunk),
          program.filename,
          program.runtime,
          limitsText,
          labelsText,
          settings.maxAttempts,
          now,
          id,
          start,
          spec.retries,
          owner,
        ]);
      }
      // Checked after the items went in (a refusal rolls them back): the
      // owner's users row is locked from the last insert's trigger to the
      // commit, not for the whole insert.
      await checkQueuedQuotaAfterInsert(tx, settings, owner, inputs.length);
    });
    return { id, state: "queued", total: inputs.length };
  };
}
