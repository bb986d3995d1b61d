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
    // New work for every coordinator's agents (a cluster's notifier tells the others).
    notifier.workAvailable(requeued.length);
  }
  await retryWaitingLeases(store, notifier);
  for (const id of failed) {
    logger.warn(
      { jobId: id },
      "job failed with NODE_LOST: its node stopped answering on every attempt",
    );
  }
  notifier.jobsFailed(expired);
}

/**
 * The polling fallback of wake-ups. Wakes are bounded per job (see
 * Notifier.workAvailable), and a cluster's wakes from other coordinators may
 * be lost on the way: if work sits queued while agents wait here, try them
 * all. Jobs leased or queued between the two calls change nothing: this is a
 * hint, kept to this coordinator (retryLeases).
 */
async function retryWaitingLeases(store: Store, notifier: Notifier): Promise<void> {
  if (notifier.waiting.lease > 0 && (await store.hasQueued())) notifier.retryLeases();
}

/**
 * Runs sweepLeases every `everyMs` until the returned stop() is called; stop()
 * resolves once a sweep in flight has ended (so the store may be closed). The
 * timer is unref'd: it never keeps the process alive on its own. A tick that
 * comes while the previous sweep (or the start's grace) still runs is skipped:
 * sweeps never overlap, and the grace always ends before the first expiry.
 *
 * Several coordinators on one database: only the maintenance leader
 * (`isLeader`, cluster/leader.ts; default: this one) expires leases; the
 * others' ticks only run the wake-up fallback (retryWaitingLeases), which
 * every coordinator needs for its own waiters.
 *
 * Leases are only expired while a coordinator is known to have been there
 * to renew them. When this one becomes the leader (at start, when it is
 * the only one) and after a tick that came far too late (the process was
 * stopped or starved), every live lease first gets a full `leaseTtlMs`
 * counted from when this coordinator began answering (its start, or the end
 * of the stall), so agents that kept running their jobs through an outage
 * renew them with their next heartbeat instead of having them run again
 * elsewhere. A coordinator that has answered for longer than that, taking
 * over from a leader that died, extends nothing: agents could renew through
 * it all along, and the dead leader's expired leases are requeued at once.
 */
export function startLeaseSweeper(
  store: Store,
  notifier: Notifier,
  logger: Logger,
  everyMs: number,
  clock: () => number = Date.now,
  metrics?: CoordinatorMetrics,
  leaseTtlMs?: number,
  isLeader: () => boolean = () => true,
): () => Promise<void> {
  let answeringSince = clock();
  let leading = false;
  const grace = async (now: number, why: string) => {
    if (leaseTtlMs === undefined || answeringSince + leaseTtlMs <= now) return;
    const extended = await store.extendLeases(answeringSince + leaseTtlMs);
    if (extended > 0)
      logger.info({ leases: extended, why }, "leases given a full TTL to be renewed");
  };
  /** Whether to sweep now; on becoming the leader, the grace comes first. */
  const lead = async (now: number, why: string) => {
    if (!isLeader()) {
      leading = false;
      return false;
    }
    if (!leading) await grace(now, why);
    leading = true;
    // The grace took a while: still the leader?
    return isLeader();
  };
  // A busy or failing database: log it and try again on the next tick.
  const logged = (why: string) => (error: unknown) => logger.error({ err: error }, why);
  let last = answeringSince;
  let inFlight: Promise<unknown> | undefined = lead(last, "coordinator started")
    .catch(logged("extending leases at start failed"))
    .finally(() => {
      inFlight = undefined;
    });
  const sweep = async () => {
    const now = clock();
    const late = now - last > everyMs * 4;
    last = now;
    if (late) {
      answeringSince = now;
      leading = false;
    }
    const why = late ? "the coordinator was not running for a while" : "became the leader";
    if (await lead(now, why)) await sweepLeases(store, notifier, logger, now, metrics);
    else await retryWaitingLeases(store, notifier);
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
