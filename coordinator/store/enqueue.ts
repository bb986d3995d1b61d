import {
  DEFAULT_LIMITS,
  DEFAULT_USER,
  type Job,
  resolveProgram,
  type SubmitJobParsed,
} from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { newId, programName, storedProgram } from "./rows.js";
import { prepareQueuedQuota } from "./users.js";

export function prepareEnqueue(context: StoreContext, getJob: (id: string) => Job) {
  const { db, settings } = context;
  const insert = db.prepare(
    `INSERT INTO jobs (id, state, source, files, filename, runtime, input, limits, labels, max_attempts, created_at, owner)
     VALUES (@id, 'queued', '', NULL, @filename, @runtime, @input, @limits, @labels, @maxAttempts, @now, @owner)`,
  );
  // The program in its own row (migration 13): the job's later UPDATEs never rewrite it.
  const insertProgram = db.prepare(
    "INSERT INTO job_programs (seq, source, files) VALUES (@seq, @source, @files)",
  );
  const checkQueuedQuota = prepareQueuedQuota(context);

  // One transaction: the quota is read and the job queued with no submit between.
  return writeTransaction(
    db,
    function enqueue(request: SubmitJobParsed, now: number, owner: string = DEFAULT_USER): Job {
      const id = newId("j");
      // The schema refuses a file name and runtime that disagree; this only fills them in.
      const program = resolveProgram(programName(request));
      if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
      checkQueuedQuota(owner, 1);
      const { lastInsertRowid } = insert.run({
        id,
        filename: program.filename,
        runtime: program.runtime,
        input: JSON.stringify(request.input ?? null),
        limits: JSON.stringify({ ...DEFAULT_LIMITS, ...request.limits }),
        labels: JSON.stringify(request.labels ?? {}),
        maxAttempts: settings.maxAttempts,
        now,
        owner,
      });
      insertProgram.run({ seq: lastInsertRowid, ...storedProgram(request) });
      return getJob(id);
    },
  );
}
