import type { JobPage } from "../../../protocol/index.js";
import type { ListJobsOptions } from "../interfaces.js";
import { decodeCursor, encodeCursor, JOB_COLUMNS, type JobRow, toJob } from "../rows.js";
import { type PgContext, query } from "./database.js";

// Through jobs_singles / jobs_singles_by_state: a batch's items are never walked past.
const ALL = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;
const IN_STATE = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE state = $3 AND batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;
// One user's, through jobs_owner_singles.
const OWN = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE owner = $3 AND batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;
const OWN_IN_STATE = `SELECT ${JOB_COLUMNS} FROM jobs
  WHERE owner = $3 AND state = $4 AND batch_id IS NULL AND seq < $1 ORDER BY seq DESC LIMIT $2`;

export function prepareListJobs({ sql }: PgContext) {
  return async function listJobs({
    state,
    owner,
    limit,
    cursor,
  }: ListJobsOptions): Promise<JobPage> {
    const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
    // One row more than asked tells whether there is a next page.
    const page = [before, limit + 1];
    const rows =
      owner === undefined
        ? state
          ? await query<JobRow>(sql, IN_STATE, [...page, state])
          : await query<JobRow>(sql, ALL, page)
        : state
          ? await query<JobRow>(sql, OWN_IN_STATE, [...page, owner, state])
          : await query<JobRow>(sql, OWN, [...page, owner]);
    const shown = rows.slice(0, limit);
    const last = shown.at(-1);
    return {
      jobs: shown.map(toJob),
      ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
    };
  };
}
