import {
  DEFAULT_LIMITS,
  DEFAULT_USER,
  type Job,
  resolveProgram,
  type SubmitJobParsed,
} from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { JOB_COLUMNS, type JobRow, newId, programName, storedProgram, toJob } from "../rows.js";
import { type PgContext, query } from "./database.js";
import { checkQueuedQuota } from "./users.js";

/**
 * The submit in one statement, so one round trip and its commit: the
 * owner's row is locked (two submits of one user take turns, and the
 * second, under READ COMMITTED, sees the first's count once it waits) and
 * the job is inserted only while the max-queued quota (coordinator/store/
 * users.ts, with $12 the default) lets one more in. A user with no row has
 * no quota, as checkQuota has it. No row answered: the quota refused.
 */
const INSERT = `WITH quota AS (
    SELECT queued, max_queued FROM users WHERE name = $11 FOR UPDATE
  )
  INSERT INTO jobs (id, state, source, files, filename, runtime, input, limits, labels,
    max_attempts, created_at, owner)
  SELECT $1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
  WHERE NOT EXISTS (
    SELECT 1 FROM quota
    WHERE COALESCE(max_queued, $12::int) IS NOT NULL AND queued + 1 > COALESCE(max_queued, $12::int)
  )
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
    const params = [
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
      settings.defaultMaxQueued ?? null,
    ];
    for (let attempt = 1; ; attempt++) {
      const [row] = await query<JobRow>(sql, INSERT, params);
      if (row) return toJob(row);
      // Refused: say why, with the counts as they are now. A quota that lets
      // the job in by now (a job of theirs was leased or ended meanwhile) is
      // asked again, a few times.
      await checkQueuedQuota(sql, settings, owner, 1);
      if (attempt >= 3) {
        throw new ApiError("QUOTA_EXCEEDED", `user ${owner} is at their max-queued quota`);
      }
    }
  };
}
