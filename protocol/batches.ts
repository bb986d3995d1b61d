import { z } from "zod";
import { JsonValue, OutcomeError, PROGRAM_FIELDS, programAgrees, RunStats } from "./jobs.js";
import { JobLimits } from "./limits.js";
import { Runtime } from "./runtimes.js";
import { OWNER_FILTER } from "./users.js";

/**
 * Batches (DESIGN.md §6): one program over many inputs. Each input becomes
 * one item, and each item is a job of its own (`GET /v1/jobs/:id` shows its
 * `batchId` and `index`), so leases, heartbeats, results and their
 * guarantees are the single job's.
 *
 * Glossary
 * - batch: the program, its limits and its items, submitted together.
 * - item: one input of a batch and the job that runs it; `index` is its
 *   position among the inputs, from 0.
 * - stream: the batch's results as NDJSON lines, in index order (each line
 *   once every item before it is done) or in completion order.
 */

/** Items a coordinator takes in one batch by default (`--max-batch`). */
export const MAX_BATCH_ITEMS = 100_000;
/** The most `--max-batch` may be set to. */
export const MAX_BATCH_ITEMS_CEILING = 1_000_000;
/** Retries of an item whose program failed, at most (`--retries`). */
export const MAX_ITEM_RETRIES = 10;

/** The media type of an NDJSON body or stream: one JSON document per line. */
export const NDJSON = "application/x-ndjson";

/**
 * What a batch runs, without its inputs: the first line of an NDJSON submit,
 * or the rest of a JSON one.
 */
const BATCH_FIELDS = {
  ...PROGRAM_FIELDS,
  /** Items of this batch running at once at most, across all agents. */
  maxParallel: z.number().int().min(1).max(100_000).optional(),
  /**
   * Times an item whose program failed (any code but the coordinator's
   * own) is run again. A lost node or a failed sandbox is retried anyway,
   * up to the coordinator's attempts.
   */
  retries: z.number().int().min(0).max(MAX_ITEM_RETRIES).default(0),
  /**
   * One fresh container per item, never one reused from an item before it
   * (items of a batch may otherwise share a container, each in a fresh
   * realm with /tmp emptied: DESIGN.md §6).
   */
  isolate: z.boolean().default(false),
};

export const BatchSpec = z.object(BATCH_FIELDS).strict().superRefine(programAgrees);
export type BatchSpec = z.input<typeof BatchSpec>;
export type BatchSpecParsed = z.output<typeof BatchSpec>;

/** `POST /v1/batches` as one JSON document. */
export const SubmitBatchRequest = z
  .object({
    ...BATCH_FIELDS,
    inputs: z.array(JsonValue.nullable()).min(1, "a batch needs at least one input"),
  })
  .strict()
  .superRefine(programAgrees);
export type SubmitBatchRequest = z.input<typeof SubmitBatchRequest>;

/** A batch parsed from either form: the spec, and each input as JSON text. */
export interface NewBatch {
  spec: BatchSpecParsed;
  /** JSON text of each input, in index order. */
  inputs: string[];
}

export const BATCH_STATES = ["queued", "running", "succeeded", "failed", "cancelled"] as const;
/**
 * queued: no item has started; running: some have; then succeeded (every
 * item did), failed (some item failed), or cancelled (a client cancelled it).
 */
export const BatchState = z.enum(BATCH_STATES);
export type BatchState = z.infer<typeof BatchState>;

export const SubmitBatchResponse = z.object({
  id: z.string(),
  state: BatchState,
  total: z.number().int(),
});
export type SubmitBatchResponse = z.infer<typeof SubmitBatchResponse>;

/** Items by state; `running` counts leased items too. */
export const BatchCounts = z.object({
  queued: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  cancelled: z.number().int().nonnegative(),
});
export type BatchCounts = z.infer<typeof BatchCounts>;

/** A batch as the API returns it. */
export const Batch = z.object({
  id: z.string(),
  state: BatchState,
  total: z.number().int().positive(),
  counts: BatchCounts,
  filename: z.string(),
  runtime: Runtime,
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  limits: JobLimits,
  labels: z.record(z.string(), z.string()),
  maxParallel: z.number().int().optional(),
  retries: z.number().int(),
  isolate: z.boolean(),
  /** The user who submitted it (optional: added with users). */
  owner: z.string().optional(),
});
export type Batch = z.infer<typeof Batch>;

export const BatchPage = z.object({ batches: z.array(Batch), nextCursor: z.string().optional() });
export type BatchPage = z.infer<typeof BatchPage>;

/** `GET /v1/batches` query. */
export const ListBatchesQuery = z.object({
  ...OWNER_FILTER,
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});
export type ListBatchesQuery = z.input<typeof ListBatchesQuery>;

/** A batch id as it appears in a path. */
export const BatchId = z.string().regex(/^b_[A-Za-z0-9_-]{1,64}$/, "not a batch id");

/** `GET /v1/batches/:id/results` query. */
export const BatchResultsQuery = z.object({
  /** Lines already received: the stream starts after them (resume without gap or duplicate). */
  from: z.coerce.number().int().min(0).default(0),
  /** `index`: in input order; `completion`: as the items finish. */
  order: z.enum(["index", "completion"]).default("index"),
});
export type BatchResultsQuery = z.input<typeof BatchResultsQuery>;

/** One line of a batch's result stream. */
export const ItemResult = z.discriminatedUnion("ok", [
  z.object({
    index: z.number().int().nonnegative(),
    ok: z.literal(true),
    result: JsonValue,
    stats: RunStats,
    jobId: z.string(),
  }),
  z.object({
    index: z.number().int().nonnegative(),
    ok: z.literal(false),
    error: OutcomeError,
    stats: RunStats,
    jobId: z.string(),
  }),
]);
export type ItemResult = z.infer<typeof ItemResult>;

/** `POST /v1/batches/:id/retry` answer: how many failed items were queued again. */
export const RetryBatchResponse = z.object({ requeued: z.number().int().nonnegative() });
export type RetryBatchResponse = z.infer<typeof RetryBatchResponse>;
