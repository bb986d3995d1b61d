import type { JobLimits, NewBatch, SubmitBatchResponse } from "../../protocol/index.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { itemId, newId } from "./rows.js";

/**
 * Queues a batch and all its items in one transaction: either every item is
 * queued or none is. The program is stored once, in the batch row.
 */
export function prepareEnqueueBatch({ db, settings }: StoreContext) {
  const insertBatch = db.prepare(
    `INSERT INTO batches (id, source, filename, limits, labels, total, max_parallel, retries,
       isolate, created_at)
     VALUES (@id, @source, @filename, @limits, @labels, @total, @maxParallel, @retries,
       @isolate, @now)`,
  );
  // Positional parameters: this runs once per item, up to 100,000 times.
  const insertItem = db.prepare(
    `INSERT INTO jobs (id, state, source, filename, input, limits, labels, max_attempts,
       created_at, batch_id, item_index, retries_left)
     VALUES (?, 'queued', '', ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  return writeTransaction(
    db,
    function enqueueBatch(batch: NewBatch, limits: JobLimits, now: number): SubmitBatchResponse {
      const { spec, inputs } = batch;
      const id = newId("b");
      const limitsText = JSON.stringify(limits);
      const labelsText = JSON.stringify(spec.labels ?? {});
      insertBatch.run({
        id,
        source: spec.source,
        filename: spec.filename,
        limits: limitsText,
        labels: labelsText,
        total: inputs.length,
        maxParallel: spec.maxParallel ?? null,
        retries: spec.retries,
        isolate: spec.isolate ? 1 : 0,
        now,
      });
      for (let index = 0; index < inputs.length; index++) {
        insertItem.run(
          itemId(id, index),
          spec.filename,
          inputs[index],
          limitsText,
          labelsText,
          settings.maxAttempts,
          now,
          id,
          index,
          spec.retries,
        );
      }
      return { id, state: "queued", total: inputs.length };
    },
  );
}
