import { DEFAULT_LIMITS, type Job, type SubmitJobParsed } from "../../protocol/index.js";
import type { StoreContext } from "./database.js";
import { newId } from "./rows.js";

export function prepareEnqueue({ db, settings }: StoreContext, getJob: (id: string) => Job) {
  const insert = db.prepare(
    `INSERT INTO jobs (id, state, source, filename, input, limits, labels, max_attempts, created_at)
     VALUES (@id, 'queued', @source, @filename, @input, @limits, @labels, @maxAttempts, @now)`,
  );

  return function enqueue(request: SubmitJobParsed, now: number): Job {
    const id = newId("j");
    insert.run({
      id,
      source: request.source,
      filename: request.filename,
      input: JSON.stringify(request.input ?? null),
      limits: JSON.stringify({ ...DEFAULT_LIMITS, ...request.limits }),
      labels: JSON.stringify(request.labels ?? {}),
      maxAttempts: settings.maxAttempts,
      now,
    });
    return getJob(id);
  };
}
