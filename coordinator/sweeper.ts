import type { Logger } from "pino";
import type { Notifier } from "./notifier.js";
import type { Store } from "./store/index.js";

/**
 * One pass of lease expiry: leases past their deadline are queued again (lease
 * waiters woken) or fail with NODE_LOST (their readers woken).
 */
export function sweepLeases(store: Store, notifier: Notifier, logger: Logger, now: number): void {
  const { requeued, failed } = store.expireLeases(now);
  if (requeued.length > 0) {
    logger.warn({ jobs: requeued }, "leases expired; jobs queued again");
  }
  // Wakes are bounded per job (see Notifier.workAvailable): if work sits queued
  // while agents wait, one of them may have been woken for nothing; try all.
  if (notifier.waiting.lease > 0 && store.hasQueued()) notifier.workAvailable();
  for (const id of failed) {
    logger.warn(
      { jobId: id },
      "job failed with NODE_LOST: its node stopped answering on every attempt",
    );
    notifier.jobFinished(id);
  }
}

/**
 * Runs sweepLeases every `everyMs` until the returned stop() is called. The
 * timer is unref'd: it never keeps the process alive on its own.
 */
export function startLeaseSweeper(
  store: Store,
  notifier: Notifier,
  logger: Logger,
  everyMs: number,
  clock: () => number = Date.now,
): () => void {
  const timer = setInterval(() => {
    try {
      sweepLeases(store, notifier, logger, clock());
    } catch (error) {
      // A busy or failing database: log it and try again on the next tick.
      logger.error({ err: error }, "lease sweep failed");
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
