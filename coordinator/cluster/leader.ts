import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import type { Store } from "../store/index.js";

/** The named lease of the maintenance leader (sweeper, retention) in the `leaders` table. */
export const MAINTENANCE = "maintenance";

/** Whether this coordinator leads maintenance now, and how to stop taking part. */
export interface Leadership {
  /**
   * True only while this coordinator's lease is known to be its own: renewed
   * within its TTL, by this process's monotonic clock counted from before the
   * renewal was sent (the database's deadline is later than that). Read
   * before each sweep: a leader that was frozen (SIGSTOP) and wakes is no
   * longer leader, whichever of its timers fires first.
   */
  isLeader(): boolean;
  /**
   * Stops renewing and gives the lease up (another takes it at its next
   * renewal); waits at most a TTL for a renewal in flight.
   */
  stop(): Promise<void>;
}

/** The only coordinator on its store (SQLite: one coordinator per file) always leads. */
export const soleLeader: Leadership = { isLeader: () => true, stop: async () => {} };

export interface ElectionOptions {
  store: Store;
  /** This coordinator, unique among those on the database (host, pid and a random part). */
  holder: string;
  /** The lease's TTL: renewed every third of it; another takes over when it ran out. */
  ttlMs: number;
  logger: Logger;
  /** Monotonic ms (tests move it). */
  clock?: () => number;
}

/**
 * Elects one maintenance leader through the database: each coordinator
 * tries every ttl/3 to take or renew the `maintenance` row (holdLeadership,
 * by the database's clock). The holder renews it; when it dies (kill -9,
 * frozen), its row expires and the next coordinator to try takes it: within
 * ttl + ttl/3 of the leader's last renewal, under 2× ttl. A coordinator that
 * fails to renew (refused, or the database did not answer) steps down at
 * once, and so does one whose lease ran out before a renewal came back.
 * Changes are logged at info.
 *
 * @example
 * const leadership = electLeader({ store, holder, ttlMs: 10_000, logger });
 * if (leadership.isLeader()) await sweep();
 */
export function electLeader(options: ElectionOptions): Leadership {
  const { store, holder, ttlMs, logger, clock = () => performance.now() } = options;
  const every = Math.max(10, Math.floor(ttlMs / 3));
  let leading = false;
  let validUntil = Number.NEGATIVE_INFINITY;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let lapse: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const stepDown = (why: string, err?: unknown) => {
    clearTimeout(lapse);
    validUntil = Number.NEGATIVE_INFINITY;
    if (!leading) return;
    leading = false;
    logger.info({ holder, why, ...(err ? { err } : {}) }, "no longer the maintenance leader");
  };

  const renew = async () => {
    const sent = clock();
    let held: boolean;
    let waited: NodeJS.Timeout | undefined;
    try {
      // A renewal that hangs (a half-open connection) is given up after a TTL, so
      // the next one is tried; if it lands later, it only renewed this holder's row.
      held = await Promise.race([
        store.holdLeadership(MAINTENANCE, holder, ttlMs),
        new Promise<never>((_, reject) => {
          waited = setTimeout(() => reject(new Error("no answer within the lease TTL")), ttlMs);
        }),
      ]);
    } catch (error) {
      stepDown("the database did not answer the renewal", error);
      return;
    } finally {
      clearTimeout(waited);
    }
    if (stopped) return;
    // Late answers count from when they were sent: the row's deadline is later.
    if (!held) return stepDown("another coordinator holds the lease");
    if (sent + ttlMs <= clock()) return stepDown("the renewal came back after the lease ran out");
    validUntil = sent + ttlMs;
    if (!leading) {
      leading = true;
      logger.info({ holder, ttlMs }, "became the maintenance leader");
    }
    // Steps down when no renewal came in time, even while one hangs.
    clearTimeout(lapse);
    lapse = setTimeout(
      () => stepDown("the lease ran out before it was renewed"),
      validUntil - clock(),
    );
    lapse.unref();
  };

  const tick = () => {
    inFlight = renew().finally(() => {
      inFlight = undefined;
      if (stopped) return;
      timer = setTimeout(tick, every);
      timer.unref();
    });
  };
  tick();

  return {
    isLeader: () => leading && clock() < validUntil,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      // A renewal in flight ends within a TTL (see renew).
      await inFlight;
      const was = leading;
      stepDown("the coordinator is stopping");
      if (was) {
        await store.releaseLeadership(MAINTENANCE, holder).catch((error: unknown) => {
          logger.warn({ err: error }, "could not give up the maintenance lease; it expires");
        });
      }
    },
  };
}
