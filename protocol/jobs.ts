import * as z from "zod";
import { BAD_PROGRAM_FORMAT_MESSAGE, OutcomeErrorCode } from "./errors.js";
import { JobLimits, JobLimitsInput } from "./limits.js";
import {
  MAX_PROGRAM_BYTES_CEILING,
  ProgramEntry,
  ProgramFiles,
  programFormProblems,
} from "./programs.js";
import { Runtime, resolveProgram, runtimeOfFilename } from "./runtimes.js";
import { OWNER_FILTER } from "./users.js";

/**
 * Any JSON value (a job's input, a program's result). One shared schema, so
 * an OpenAPI document can name it once (zod builds it recursively).
 */
export const JsonValue = z.json();

/**
 * Job states and the transitions the store allows:
 * queued → leased → running → succeeded | failed | cancelled;
 * leased | running → queued when a lease expires (attempt + 1);
 * queued | leased | running → cancelled on a client's cancel.
 */
export const JOB_STATES = [
  "queued",
  "leased",
  "running",
  "succeeded",
  "failed",
  "cancelled",
] as const;
export const JobState = z.enum(JOB_STATES);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_STATES: readonly JobState[] = ["succeeded", "failed", "cancelled"];
export const isTerminal = (state: JobState): boolean => TERMINAL_STATES.includes(state);

/**
 * A program file name: plain name ending in .js, .cjs or .mjs (picks CommonJS
 * or ESM) for node, .py for python.
 */
export const ProgramFilename = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,100}$/, "a plain file name of letters, digits, _ . -")
  .refine(
    (name) => runtimeOfFilename(name) !== undefined,
    "must end in .js, .cjs or .mjs (node) or .py (python)",
  );

const Labels = z
  .record(z.string().max(64), z.string().max(256))
  .refine((labels) => Object.keys(labels).length <= 32, "at most 32 labels");

/**
 * What a job or a batch runs: its program (`source`, or `files` + `entry`:
 * protocol/programs.ts), runtime, limits and labels. The coordinator's own
 * `--max-program` is checked before the schema (413); the schema holds only
 * the ceiling.
 */
export const PROGRAM_FIELDS = {
  source: z
    .string()
    .min(1, "the program is empty")
    .refine(
      (source) => Buffer.byteLength(source, "utf8") <= MAX_PROGRAM_BYTES_CEILING,
      `the program is larger than ${MAX_PROGRAM_BYTES_CEILING} bytes`,
    )
    .optional(),
  /** Default: main.js, or main.py for a python job. Only with source. */
  filename: ProgramFilename.optional(),
  /** A program of several files, instead of source. */
  files: ProgramFiles.optional(),
  /** Which of the files the runner loads (its folder is the program's working place). */
  entry: ProgramEntry.optional(),
  /** Default: from the file name's extension (.py → python), else node. */
  runtime: Runtime.optional(),
  limits: JobLimitsInput.optional(),
  labels: Labels.optional(),
};

/**
 * A refinement: the program comes in one form (source, or files + entry),
 * and its file name (the entry's, with files) and the runtime agree (a .py
 * file is python).
 */
export function programAgrees(
  request: {
    source?: string | undefined;
    filename?: string | undefined;
    files?: z.infer<typeof ProgramFiles> | undefined;
    entry?: string | undefined;
    runtime?: Runtime | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const problems = programFormProblems(request);
  for (const { path, message } of problems) ctx.addIssue({ code: "custom", path: [path], message });
  if (problems.length > 0) return;
  const program = resolveProgram({
    filename: request.entry ?? request.filename,
    runtime: request.runtime,
  });
  if ("problem" in program)
    ctx.addIssue({
      code: "custom",
      path: [request.entry === undefined ? "filename" : "entry"],
      message: program.problem,
    });
}

/** `POST /v1/jobs` body. */
export const SubmitJobRequest = z
  .object({ ...PROGRAM_FIELDS, input: JsonValue.nullable().optional() })
  .strict()
  .superRefine(programAgrees);
export type SubmitJobRequest = z.input<typeof SubmitJobRequest>;
export type SubmitJobParsed = z.output<typeof SubmitJobRequest>;

export const SubmitJobResponse = z.object({ id: z.string(), state: JobState });
export type SubmitJobResponse = z.infer<typeof SubmitJobResponse>;

/** Measurements the agent takes of one run. */
export const RunStats = z
  .object({
    durationMs: z.number().nonnegative(),
    exitCode: z.number().int().nullable().optional(),
    logBytes: z.number().int().nonnegative().optional(),
    logsTruncated: z.boolean().optional(),
  })
  .passthrough();
export type RunStats = z.infer<typeof RunStats>;

export const OutcomeError = z.object({
  code: OutcomeErrorCode,
  message: z.string(),
  detail: z.string().optional(),
});
export type OutcomeError = z.infer<typeof OutcomeError>;

/** What a finished job produced. */
export const Outcome = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), result: JsonValue, logs: z.string(), stats: RunStats }),
  z.object({ ok: z.literal(false), error: OutcomeError, logs: z.string(), stats: RunStats }),
]);
export type Outcome = z.infer<typeof Outcome>;

/**
 * Why a queued job is not running yet, as the lease sees it:
 * - `no_node_fits`: no ready node offers its runtime, or takes jobs as large as its limits;
 * - `nodes_draining`: the only nodes that would take it are draining;
 * - `user_max_running`: its user runs as many jobs as their quota allows;
 * - `no_free_slot`: the nodes that take it are busy (other work, fair share, older work first).
 */
export const WaitingReason = z.enum([
  "no_free_slot",
  "user_max_running",
  "no_node_fits",
  "nodes_draining",
]);
export type WaitingReason = z.infer<typeof WaitingReason>;

/**
 * On a queued job read by id: why it waits, in words too, and its place
 * among its user's queued work (1 = their oldest). The lease deals a user's
 * batches and single jobs round-robin, so a job of a small batch can pass
 * older items of a big one: the place is a bound, not a promise.
 */
export const JobWaiting = z.object({
  reason: WaitingReason,
  message: z.string(),
  position: z.number().int().positive(),
});
export type JobWaiting = z.infer<typeof JobWaiting>;

/** A job as the API returns it. */
export const Job = z.object({
  id: z.string(),
  state: JobState,
  attempts: z.number().int().nonnegative(),
  filename: z.string(),
  /** Jobs of coordinators that predate runtimes are node jobs. */
  runtime: Runtime.default("node"),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  node: z.string().optional(),
  limits: JobLimits,
  labels: z.record(z.string(), z.string()),
  outcome: Outcome.optional(),
  /** Set on a batch's items: the batch, and the item's position among its inputs. */
  batchId: z.string().optional(),
  index: z.number().int().nonnegative().optional(),
  /** Only on a queued job read by id (optional, added after 0.1). */
  waiting: JobWaiting.optional(),
  /** The user who submitted it (optional: added with users; older jobs are `default`'s). */
  owner: z.string().optional(),
});
export type Job = z.infer<typeof Job>;

/** `GET /v1/jobs/:id` query. `wait` long-polls up to that many seconds for a terminal state. */
export const GetJobQuery = z.object({
  wait: z.coerce.number().min(0).max(60).optional(),
});

/** `GET /v1/jobs` query. */
export const ListJobsQuery = z.object({
  state: JobState.optional(),
  ...OWNER_FILTER,
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});
export type ListJobsQuery = z.input<typeof ListJobsQuery>;

export const JobPage = z.object({ jobs: z.array(Job), nextCursor: z.string().optional() });
export type JobPage = z.infer<typeof JobPage>;

/** A job id as it appears in a path. */
export const JobId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "not a job id");

/**
 * The document the runner reads on its stdin (agent ⇄ container contract):
 * one line of JSON, then, for a node program of several files, their
 * contents as raw bytes, one after another (`bytes` each), never JSON-encoded.
 */
export const RunnerRequest = z.object({
  /** The program, when it is one file ("" with files). */
  source: z.string(),
  /** The one file's name, or the entry among the files. */
  filename: ProgramEntry,
  /**
   * A program of several files, written into the runner's own folder: for
   * the node runner their UTF-8 byte counts (the bytes follow the line), for
   * the Python runner the files themselves.
   */
  files: z
    .union([
      z.array(z.object({ path: z.string(), bytes: z.number().int().nonnegative() })),
      ProgramFiles,
    ])
    .optional(),
  input: JsonValue.nullable(),
  /** Frames the result envelope on stdout; the program never sees it. */
  nonce: z.string().regex(/^[A-Za-z0-9]{16,128}$/),
  /**
   * The node runner, its result out, waits this long for the agent to remove
   * its container instead of exiting at once (runner.js, lingerUntilRemoved);
   * absent (a plain `docker run` of the image), it exits at once.
   */
  lingerMs: z.number().int().min(0).max(10_000).optional(),
});
export type RunnerRequest = z.infer<typeof RunnerRequest>;

/** The envelope the runner writes between two nonces on stdout. */
export const RunnerEnvelope = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), result: JsonValue }),
  z.object({ ok: z.literal(false), error: OutcomeError }),
]);
export type RunnerEnvelope = z.infer<typeof RunnerEnvelope>;

export { BAD_PROGRAM_FORMAT_MESSAGE };
