import * as z from "zod";
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

/**
 * Upper bounds (ms, inclusive) of the item-duration histogram's buckets,
 * 1-2-5 steps from 1 ms to the longest time limit (one hour); a last bucket
 * (`upToMs: null`) holds anything longer.
 */
export const DURATION_BUCKETS_MS = [
  1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
  500_000, 1_000_000, 2_000_000, 3_600_000,
] as const;

/** Failed items a summary lists at most (the lowest indexes); every one is in the results stream. */
export const SUMMARY_FAILED_ITEMS = 100;

/** The window of `BatchSummary.recent`: items that finished in the last this many ms. */
export const SUMMARY_RECENT_MS = 10_000;

/** One failed item: its position, its job, its error's code and message (the detail stays on the job). */
export const FailedItem = z.object({
  index: z.number().int().nonnegative(),
  jobId: z.string(),
  error: OutcomeError.pick({ code: true, message: true }),
});
export type FailedItem = z.infer<typeof FailedItem>;

/**
 * `GET /v1/batches/:id/summary`: what the dashboard's batch page draws,
 * computed by the coordinator so a 100,000-item batch never streams every
 * result into a browser. Durations are the run times agents measured
 * (`stats.durationMs`) of items that succeeded or failed; cancelled items
 * did not run to an end and are not in them.
 */
export const BatchSummary = z.object({
  batch: Batch,
  /** When the summary was read (ISO). */
  at: z.string(),
  durations: z.object({
    /** In DURATION_BUCKETS_MS order, then the bucket above the last bound. */
    buckets: z.array(
      z.object({
        /** Inclusive upper bound in ms; null: longer than the last bound. */
        upToMs: z.number().nullable(),
        succeeded: z.number().int().nonnegative(),
        failed: z.number().int().nonnegative(),
      }),
    ),
    /** Items in the histogram. */
    count: z.number().int().nonnegative(),
    minMs: z.number().nonnegative().optional(),
    maxMs: z.number().nonnegative().optional(),
  }),
  /** When the first item that has finished started (ISO), and when the last one finished. */
  firstStartedAt: z.string().optional(),
  lastFinishedAt: z.string().optional(),
  /** Items that reached a terminal state in the SUMMARY_RECENT_MS before `at`. */
  recent: z.object({
    windowMs: z.number().int().positive(),
    finished: z.number().int().nonnegative(),
  }),
  /** The failed items with the lowest indexes (at most SUMMARY_FAILED_ITEMS), in index order. */
  failed: z.object({ items: z.array(FailedItem), more: z.boolean() }),
});
export type BatchSummary = z.infer<typeof BatchSummary>;
