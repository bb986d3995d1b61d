import type { JobPage } from "../../../protocol/index.js";
import type { ListJobsOptions } from "../interfaces.js";
import { decodeCursor, encodeCursor, JOB_COLUMNS, type JobRow, toJob } from "../rows.js";
import { type PgContext, query } from "./database.js";

// Through jobs_singles / jobs_singles_by_state: a batch's items are never walked past.
const ALL = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;
const IN_STATE = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE state = $3 AND batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;

export function prepareListJobs({ sql }: PgContext) {
  return async function listJobs({ state, limit, cursor }: ListJobsOptions): Promise<JobPage> {
    const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
    // One row more than asked tells whether there is a next page.
    const rows = state
      ? await query<JobRow>(sql, IN_STATE, [before, limit + 1, state])
      : await query<JobRow>(sql, ALL, [before, limit + 1]);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      jobs: page.map(toJob),
      ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
    };
  };
}
