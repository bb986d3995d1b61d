import { setImmediate as yieldToLoop } from "node:timers/promises";
import {
  type BatchSummary,
  DURATION_BUCKETS_MS,
  SUMMARY_FAILED_ITEMS,
  SUMMARY_RECENT_MS,
} from "../protocol/index.js";
import type { BatchItemEnd, BatchItemEndsCursor, Store } from "./store/index.js";

/** Items read from the store per step; the event loop runs between steps. */
const CHUNK = 500;
/** Batches whose histogram is kept; the least recently read is dropped past this. */
const KEPT = 32;

/** What is known of one batch's finished items so far. */
interface Fold {
  cursor: BatchItemEndsCursor | undefined;
  succeeded: number[];
  failed: number[];
  count: number;
  minMs: number | undefined;
  maxMs: number | undefined;
  firstStartedAt: number | undefined;
  lastFinishedAt: number | undefined;
  /** The catch-up under way: one at a time per batch. */
  busy: Promise<void>;
}

const newFold = (): Fold => ({
  cursor: undefined,
  succeeded: Array(DURATION_BUCKETS_MS.length + 1).fill(0),
  failed: Array(DURATION_BUCKETS_MS.length + 1).fill(0),
  count: 0,
  minMs: undefined,
  maxMs: undefined,
  firstStartedAt: undefined,
  lastFinishedAt: undefined,
  busy: Promise.resolve(),
});

/** The bucket of a duration: the first bound it does not exceed, else the last bucket. */
export function bucketOf(ms: number): number {
  const index = DURATION_BUCKETS_MS.findIndex((bound) => ms <= bound);
  return index === -1 ? DURATION_BUCKETS_MS.length : index;
}

function add(fold: Fold, end: BatchItemEnd): void {
  fold.cursor = { finishedAt: end.finishedAt, index: end.index };
  fold.lastFinishedAt = Math.max(fold.lastFinishedAt ?? end.finishedAt, end.finishedAt);
  if (end.startedAt !== null) {
    fold.firstStartedAt = Math.min(fold.firstStartedAt ?? end.startedAt, end.startedAt);
  }
  // A cancelled item did not run to an end: its time says when it was stopped.
  if (end.durationMs === null || (end.state !== "succeeded" && end.state !== "failed")) return;
  const bucket = bucketOf(end.durationMs);
  if (end.state === "succeeded") fold.succeeded[bucket] = (fold.succeeded[bucket] ?? 0) + 1;
  else fold.failed[bucket] = (fold.failed[bucket] ?? 0) + 1;
  fold.count++;
  fold.minMs = Math.min(fold.minMs ?? end.durationMs, end.durationMs);
  fold.maxMs = Math.max(fold.maxMs ?? end.durationMs, end.durationMs);
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

/**
 * The batch page's numbers (`GET /v1/batches/:id/summary`). The duration
 * histogram is folded from the items in the order they ended, keeping a
 * cursor per batch, so each item's outcome is read once per coordinator
 * run however often a page asks (a 100,000-item batch is read in steps of
 * CHUNK, the event loop running between them). Retrying a batch's items
 * takes them out of what was folded: `forget` starts that batch over.
 *
 * @example
 * const summaries = new BatchSummaries(store, Date.now);
 * const summary = await summaries.read("b_…");
 * summaries.forget("b_…"); // after POST /v1/batches/b_…/retry
 */
export class BatchSummaries {
  private readonly folds = new Map<string, Fold>();

  constructor(
    private readonly store: Store,
    private readonly clock: () => number,
  ) {}

  /** The batch's summary; NOT_FOUND when there is no such batch. */
  async read(batchId: string): Promise<BatchSummary> {
    // An unknown (or pruned) batch is refused before anything is kept for it.
    await this.store.getBatch(batchId);
    const fold = this.foldOf(batchId);
    const caughtUp = fold.busy.then(() => this.catchUp(batchId, fold));
    // A failed step (the batch pruned under it) leaves the next reader free to go on.
    fold.busy = caughtUp.catch(() => undefined);
    await caughtUp;
    const now = this.clock();
    const batch = await this.store.getBatch(batchId);
    const failures = await this.store.batchFailures(batchId, {
      limit: SUMMARY_FAILED_ITEMS,
      since: now - SUMMARY_RECENT_MS,
    });
    const bounds: (number | null)[] = [...DURATION_BUCKETS_MS, null];
    return {
      batch,
      at: new Date(now).toISOString(),
      durations: {
        buckets: bounds.map((upToMs, i) => ({
          upToMs,
          succeeded: fold.succeeded[i] ?? 0,
          failed: fold.failed[i] ?? 0,
        })),
        count: fold.count,
        ...(fold.minMs !== undefined ? { minMs: fold.minMs } : {}),
        ...(fold.maxMs !== undefined ? { maxMs: fold.maxMs } : {}),
      },
      ...(fold.firstStartedAt !== undefined ? { firstStartedAt: iso(fold.firstStartedAt) } : {}),
      ...(fold.lastFinishedAt !== undefined ? { lastFinishedAt: iso(fold.lastFinishedAt) } : {}),
      recent: { windowMs: SUMMARY_RECENT_MS, finished: failures.finishedSince },
      failed: { items: failures.items, more: failures.more },
    };
  }

  /** Drops what was folded of a batch (its items were retried, so some ended twice). */
  forget(batchId: string): void {
    this.folds.delete(batchId);
  }

  private foldOf(batchId: string): Fold {
    const fold = this.folds.get(batchId) ?? newFold();
    // Re-inserted: the map's order is least recently read first.
    this.folds.delete(batchId);
    this.folds.set(batchId, fold);
    for (const oldest of this.folds.keys()) {
      if (this.folds.size <= KEPT) break;
      this.folds.delete(oldest);
    }
    return fold;
  }

  private async catchUp(batchId: string, fold: Fold): Promise<void> {
    for (;;) {
      const ends = await this.store.batchItemEnds(batchId, {
        after: fold.cursor,
        before: this.clock(),
        limit: CHUNK,
      });
      for (const end of ends) add(fold, end);
      if (ends.length < CHUNK) return;
      await yieldToLoop();
    }
  }
}
