import { randomBytes } from "node:crypto";
import {
  DEFAULT_LIMITS,
  type Job,
  type JobLimits,
  type JobState,
  type Outcome,
  type ProgramFile,
  type Runtime,
} from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { StoredJson } from "../storedJson.js";

/**
 * A random URL-safe id: prefix, "_", then `bytes` random bytes in base64url
 * (15 bytes → 20 characters, 120 bits: unguessable and collision-free).
 */
export const newId = (prefix: string, bytes = 15) =>
  `${prefix}_${randomBytes(bytes).toString("base64url")}`;

/**
 * `count` fresh lease ids that share one random prefix and end in their
 * position: as unique as newId's, one call for random bytes instead of
 * `count`, and side by side in the jobs_by_lease index, so a lease of many
 * jobs dirties a page or two of it instead of one page per job.
 */
export function newLeaseIds(count: number): string[] {
  const prefix = newId("l", 15);
  return Array.from({ length: count }, (_, position) => `${prefix}${position.toString(36)}`);
}

/**
 * Item `index` of batch `b_X` is job `j_X-index`: as unguessable as its
 * batch, and made without 100,000 calls for random bytes.
 */
export const itemId = (batchId: string, index: number) => `j${batchId.slice(1)}-${index}`;

/** What resolveProgram names a program by: its file name, or its entry (files). */
export const programName = (request: {
  filename?: string | undefined;
  entry?: string | undefined;
  runtime?: Runtime | undefined;
}) => ({ filename: request.entry ?? request.filename, runtime: request.runtime });

/** A program's source and files columns: one of the two forms (files as JSON, else NULL). */
export const storedProgram = (request: {
  source?: string | undefined;
  files?: readonly ProgramFile[] | undefined;
}) => ({
  source: request.source ?? "",
  files: request.files === undefined ? null : JSON.stringify(request.files),
});

/**
 * A stored program as an agent's JobSpec carries it: files only when it has
 * them, as the JSON the store kept (the lease answer writes it as it is).
 */
export const leasedProgram = (row: {
  source: string;
  files: string | Buffer | null;
}): { source: string; files?: StoredJson<ProgramFile[]> } =>
  row.files === null ? { source: row.source } : { source: "", files: new StoredJson(row.files) };

/** The columns a Job is built from; never the (large) source and input. */
export const JOB_COLUMNS = `seq, id, state, filename, runtime, limits, labels, attempts,
  created_at, started_at, finished_at, node, outcome, batch_id, item_index, owner`;

export interface JobRow {
  seq: number;
  id: string;
  state: JobState;
  filename: string;
  runtime: Runtime;
  limits: string;
  labels: string;
  attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  node: string | null;
  outcome: string | null;
  batch_id: string | null;
  item_index: number | null;
  owner: string;
}

/**
 * A job's stored limits; one stored before a limit existed (pids, tmpfsMb,
 * logBytes, resultBytes came after 0.1) runs with that limit's default.
 */
export const storedLimits = (text: string): JobLimits => ({
  ...DEFAULT_LIMITS,
  ...(JSON.parse(text) as Partial<JobLimits>),
});

const iso = (ms: number) => new Date(ms).toISOString();

/** A row as the API returns it (protocol `Job`). */
export function toJob(row: JobRow): Job {
  return {
    id: row.id,
    state: row.state,
    attempts: row.attempts,
    filename: row.filename,
    runtime: row.runtime,
    createdAt: iso(row.created_at),
    ...(row.started_at !== null ? { startedAt: iso(row.started_at) } : {}),
    ...(row.finished_at !== null ? { finishedAt: iso(row.finished_at) } : {}),
    ...(row.node !== null ? { node: row.node } : {}),
    limits: storedLimits(row.limits),
    labels: JSON.parse(row.labels) as Record<string, string>,
    ...(row.outcome !== null ? { outcome: JSON.parse(row.outcome) as Outcome } : {}),
    ...(row.batch_id !== null ? { batchId: row.batch_id, index: row.item_index ?? 0 } : {}),
    owner: row.owner,
  };
}

/** The outcome the coordinator itself gives a job it ends (cancel, node lost). */
export function coordinatorOutcome(
  code: "CANCELLED" | "NODE_LOST",
  message: string,
  durationMs: number,
  detail?: string,
): string {
  const outcome: Outcome = {
    ok: false,
    error: { code, message, ...(detail === undefined ? {} : { detail }) },
    logs: "",
    stats: { durationMs: Math.max(0, durationMs) },
  };
  return JSON.stringify(outcome);
}

/** Page positions are opaque to clients: the base64url of the last row's seq. */
export const encodeCursor = (seq: number) => Buffer.from(`s${seq}`).toString("base64url");

export function decodeCursor(cursor: string): number {
  const match = /^s(\d{1,15})$/.exec(Buffer.from(cursor, "base64url").toString());
  if (!match?.[1]) {
    throw new ApiError(
      "VALIDATION_ERROR",
      "invalid query: cursor is not one this server gave out; start again without it",
    );
  }
  return Number(match[1]);
}
