import type { JobPage } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";
import type { ListJobsOptions } from "./interfaces.js";
import { decodeCursor, encodeCursor, JOB_COLUMNS, type JobRow, toJob } from "./rows.js";

// Through jobs_singles, named: a batch's items are never walked past.
export function prepareListJobs({ db }: StoreContext) {
  const all = db.prepare<[number, number], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs INDEXED BY jobs_singles
     WHERE batch_id IS NULL AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );
  const inState = db.prepare<[string, number, number], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs INDEXED BY jobs_singles
     WHERE state = ? AND batch_id IS NULL AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );

  // One user's, through jobs_owner_singles (owner, seq).
  const own = db.prepare<[string, number, number], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs INDEXED BY jobs_owner_singles
     WHERE owner = ? AND batch_id IS NULL AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );
  const ownInState = db.prepare<[string, string, number, number], JobRow>(
    `SELECT ${JOB_COLUMNS} FROM jobs INDEXED BY jobs_owner_singles
     WHERE owner = ? AND state = ? AND batch_id IS NULL AND seq < ? ORDER BY seq DESC LIMIT ?`,
  );

  return function listJobs({ state, owner, limit, cursor }: ListJobsOptions): JobPage {
    const before = cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(cursor);
    // One row more than asked tells whether there is a next page.
    const rows =
      owner !== undefined
        ? state
          ? ownInState.all(owner, state, before, limit + 1)
          : own.all(owner, before, limit + 1)
        : state
          ? inState.all(state, before, limit + 1)
          : all.all(before, limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      jobs: page.map(toJob),
      ...(rows.length > limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
    };
  };
}
