import type { Logger } from "pino";
import type { CoordinatorMetrics } from "./metrics/index.js";
import type { Notifier } from "./notifier.js";
import type { Store } from "./store/index.js";

/**
 * One pass of lease expiry: leases past their deadline are queued again (lease
 * waiters woken) or fail with NODE_LOST (their readers woken), and counted in
 * `metrics` when given.
 */
export function sweepLeases(
  store: Store,
  notifier: Notifier,
  logger: Logger,
  now: number,
  metrics?: CoordinatorMetrics,
): void {
  const expired = store.expireLeases(now);
  const { requeued, failed } = expired;
  metrics?.leasesExpired(requeued.length, failed.length);
  metrics?.jobsFinished("NODE_LOST", failed.length);
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
  }
  notifier.jobsFailed(expired);
}

/**
 * Runs sweepLeases every `everyMs` until the returned stop() is called. The
 * timer is unref'd: it never keeps the process alive on its own.
 *
 * Leases are only expired while the coordinator is known to have been there
 * to renew them: at start (after a restart or crash) and after a tick that
 * came far too late (the process was stopped or starved), every live lease
 * first gets a full `leaseTtlMs` from now, so agents that kept running their
 * jobs through the outage renew them with their next heartbeat instead of
 * having them run again elsewhere.
 */
export function startLeaseSweeper(
  store: Store,
  notifier: Notifier,
  logger: Logger,
  everyMs: number,
  clock: () => number = Date.now,
  metrics?: CoordinatorMetrics,
  leaseTtlMs?: number,
): () => void {
  const grace = (now: number, why: string) => {
    if (leaseTtlMs === undefined) return;
    const extended = store.extendLeases(now + leaseTtlMs);
    if (extended > 0)
      logger.info({ leases: extended, why }, "leases given a full TTL to be renewed");
  };
  let last = clock();
  grace(last, "coordinator started");
  const timer = setInterval(() => {
    try {
      const now = clock();
      const late = now - last > everyMs * 4;
      last = now;
      if (late) grace(now, "the coordinator was not running for a while");
      sweepLeases(store, notifier, logger, now, metrics);
    } catch (error) {
      // A busy or failing database: log it and try again on the next tick.
      logger.error({ err: error }, "lease sweep failed");
    }
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
