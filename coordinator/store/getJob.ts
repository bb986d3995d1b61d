import type { Job } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import type { StoreContext } from "./database.js";
import { JOB_COLUMNS, type JobRow, toJob } from "./rows.js";

export function prepareGetJob({ db }: StoreContext) {
  const byId = db.prepare<[string], JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`);

  return function getJob(id: string): Job {
    const row = byId.get(id);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  };
}
