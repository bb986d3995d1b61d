import {
  DEFAULT_USER,
  type JobLimits,
  type NewBatch,
  resolveProgram,
  type SubmitBatchResponse,
} from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { itemId, newId, programName, storedProgram } from "./rows.js";
import { prepareQueuedQuota } from "./users.js";

/**
 * Queues a batch and all its items in one transaction: either every item is
 * queued or none is. The program is stored once, in the batch row.
 */
export function prepareEnqueueBatch(context: StoreContext) {
  const { db, settings } = context;
  const checkQueuedQuota = prepareQueuedQuota(context);
  const insertBatch = db.prepare(
    `INSERT INTO batches (id, source, files, filename, runtime, limits, labels, total, max_parallel,
       retries, isolate, created_at, owner)
     VALUES (@id, @source, @files, @filename, @runtime, @limits, @labels, @total, @maxParallel,
       @retries, @isolate, @now, @owner)`,
  );
  // Positional parameters: this runs once per item, up to 100,000 times.
  const insertItem = db.prepare(
    `INSERT INTO jobs (id, state, source, filename, runtime, input, limits, labels, max_attempts,
       created_at, batch_id, item_index, retries_left, owner)
     VALUES (?, 'queued', '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );

  return writeTransaction(
    db,
    function enqueueBatch(
      batch: NewBatch,
      limits: JobLimits,
      now: number,
      owner: string = DEFAULT_USER,
    ): SubmitBatchResponse {
      const { spec, inputs } = batch;
      // The schema refuses a file name and runtime that disagree; this only fills them in.
      const program = resolveProgram(programName(spec));
      if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
      checkQueuedQuota(owner, inputs.length);
      const id = newId("b");
      const limitsText = JSON.stringify(limits);
      const labelsText = JSON.stringify(spec.labels ?? {});
      insertBatch.run({
        id,
        ...storedProgram(spec),
        filename: program.filename,
        runtime: program.runtime,
        limits: limitsText,
        labels: labelsText,
        total: inputs.length,
        maxParallel: spec.maxParallel ?? null,
        retries: spec.retries,
        isolate: spec.isolate ? 1 : 0,
        now,
        owner,
      });
      for (let index = 0; index < inputs.length; index++) {
        insertItem.run(
          itemId(id, index),
          program.filename,
          program.runtime,
          inputs[index],
          limitsText,
          labelsText,
          settings.maxAttempts,
          now,
          id,
          index,
          spec.retries,
          owner,
        );
      }
      return { id, state: "queued", total: inputs.length };
    },
  );
}
