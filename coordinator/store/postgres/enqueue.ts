import {
  DEFAULT_LIMITS,
  type Job,
  resolveProgram,
  type SubmitJobParsed,
} from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { JOB_COLUMNS, type JobRow, newId, toJob } from "../rows.js";
import { type PgContext, query } from "./database.js";

// One round trip: the row as inserted is the answer.
const INSERT = `INSERT INTO jobs (id, state, source, filename, runtime, input, limits, labels,
    max_attempts, created_at)
  VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9)
  RETURNING ${JOB_COLUMNS}`;

export function prepareEnqueue({ sql, settings }: PgContext) {
  return async function enqueue(request: SubmitJobParsed, now: number): Promise<Job> {
    // The schema refuses a file name and runtime that disagree; this only fills them in.
    const program = resolveProgram(request);
    if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
    const [row] = await query<JobRow>(sql, INSERT, [
      newId("j"),
      request.source,
      program.filename,
      program.runtime,
      JSON.stringify(request.input ?? null),
      JSON.stringify({ ...DEFAULT_LIMITS, ...request.limits }),
      JSON.stringify(request.labels ?? {}),
      settings.maxAttempts,
      now,
    ]);
    if (!row) throw new Error("INSERT … RETURNING answered no row");
    return toJob(row);
  };
}
