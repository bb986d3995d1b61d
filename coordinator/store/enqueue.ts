import {
  DEFAULT_LIMITS,
  type Job,
  resolveProgram,
  type SubmitJobParsed,
} from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import type { StoreContext } from "./database.js";
import { newId, programName, storedProgram } from "./rows.js";

export function prepareEnqueue({ db, settings }: StoreContext, getJob: (id: string) => Job) {
  const insert = db.prepare(
    `INSERT INTO jobs (id, state, source, files, filename, runtime, input, limits, labels, max_attempts, created_at)
     VALUES (@id, 'queued', @source, @files, @filename, @runtime, @input, @limits, @labels, @maxAttempts, @now)`,
  );

  return function enqueue(request: SubmitJobParsed, now: number): Job {
    const id = newId("j");
    // The schema refuses a file name and runtime that disagree; this only fills them in.
    const program = resolveProgram(programName(request));
    if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
    insert.run({
      id,
      ...storedProgram(request),
      filename: program.filename,
      runtime: program.runtime,
      input: JSON.stringify(request.input ?? null),
      limits: JSON.stringify({ ...DEFAULT_LIMITS, ...request.limits }),
      labels: JSON.stringify(request.labels ?? {}),
      maxAttempts: settings.maxAttempts,
      now,
    });
    return getJob(id);
  };
}
