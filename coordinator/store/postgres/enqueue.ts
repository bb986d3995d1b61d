import {
  DEFAULT_LIMITS,
  DEFAULT_USER,
  type Job,
  resolveProgram,
  type SubmitJobParsed,
} from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { JOB_COLUMNS, type JobRow, newId, programName, storedProgram, toJob } from "../rows.js";
import { type PgContext, query, writeTransaction } from "./database.js";
import { checkQueuedQuota } from "./users.js";

// One round trip: the row as inserted is the answer.
const INSERT = `INSERT INTO jobs (id, state, source, files, filename, runtime, input, limits, labels,
    max_attempts, created_at, owner)
  VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  RETURNING ${JOB_COLUMNS}`;

export function prepareEnqueue({ sql, settings }: PgContext) {
  return async function enqueue(
    request: SubmitJobParsed,
    now: number,
    owner: string = DEFAULT_USER,
  ): Promise<Job> {
    // The schema refuses a file name and runtime that disagree; this only fills them in.
    const program = resolveProgram(programName(request));
    if ("problem" in program) throw new ApiError("VALIDATION_ERROR", program.problem);
    const { source, files } = storedProgram(request);
    // One transaction: the quota is read (its row locked) and the job queued with no submit between.
    const [row] = await writeTransaction(sql, async (tx) => {
      await checkQueuedQuota(tx, settings, owner, 1);
      return query<JobRow>(tx, INSERT, [
        newId("j"),
        source,
        files,
        program.filename,
        program.runtime,
        JSON.stringify(request.input ?? null),
        JSON.stringify({ ...DEFAULT_LIMITS, ...request.limits }),
        JSON.stringify(request.labels ?? {}),
        settings.maxAttempts,
        now,
        owner,
      ]);
    });
    if (!row) throw new Error("INSERT … RETURNING answered no row");
    return toJob(row);
  };
}
