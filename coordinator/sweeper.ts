import type { Logger } from "pino";
import type { CoordinatorMetrics } from "./metrics/index.js";
import type { Notifier } from "./notifier.js";
import type { Store } from "./store/index.js";

/**
 * One pass of lease expiry: leases past their deadline are queued again (lease
 * waiters woken) or fail with NODE_LOST (their readers woken), and counted in
 * `metrics` when given.
 */
export async function sweepLeases(
  store: Store,
  notifier: Notifier,
  logger: Logger,
  now: number,
  metrics?: CoordinatorMetrics,
): Promise<void> {
  const expired = await store.expireLeases(now);
  const { requeued, failed } = expired;
  metrics?.leasesExpired(requeued.length, failed.length);
  metrics?.jobsFinished("NODE_LOST", failed.length);
  if (requeued.length > 0) {
    logger.warn({ jobs: requeued }, "leases expired; jobs queued again");
  }
  // Wakes are bounded per job (see Notifier.workAvailable): if work sits queued
  // while agents wait, one of them may have been woken for nothing; try all.
  // Jobs leased or queued between the two calls change nothing: this is a hint.
  if (notifier.waiting.lease > 0 && (await store.hasQueued())) notifier.workAvailable();
  for (const id of failed) {
    logger.warn(
      { jobId: id },
      "job failed with NODE_LOST: its node stopped answering on every attempt",
    );
  }
  notifier.jobsFailed(expired);
}

/**
 * Runs sweepLeases every `everyMs` until the returned stop() is called; stop()
 * resolves once a sweep in flight has ended (so the store may be closed). The
 * timer is unref'd: it never keeps the process alive on its own. A tick that
 * comes while the previous sweep (or the start's grace) still runs is skipped:
 * sweeps never overlap, and the grace always ends before the first expiry.
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
): () => Promise<void> {
  const grace = async (now: number, why: string) => {
    if (leaseTtlMs === undefined) return;
    const extended = await store.extendLeases(now + leaseTtlMs);
    if (extended > 0)
      logger.info({ leases: extended, why }, "leases given a full TTL to be renewed");
  };
  // A busy or failing database: log it and try again on the next tick.
  const logged = (why: string) => (error: unknown) => logger.error({ err: error }, why);
  let last = clock();
  let inFlight: Promise<void> | undefined = grace(last, "coordinator started")
    .catch(logged("extending leases at start failed"))
    .finally(() => {
      inFlight = undefined;
    });
  const sweep = async () => {
    const now = clock();
    const late = now - last > everyMs * 4;
    last = now;
    if (late) await grace(now, "the coordinator was not running for a while");
    await sweepLeases(store, notifier, logger, now, metrics);
  };
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = sweep()
      .catch(logged("lease sweep failed"))
      .finally(() => {
        inFlight = undefined;
      });
  }, everyMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}
