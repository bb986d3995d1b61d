import type { Logger } from "pino";
import type { Store } from "./store/index.js";

const EVERY_MS = 60_000;

/**
 * Deletes finished jobs older than `retentionMs`, at start and then every
 * minute, a batch per event-loop turn so requests are served in between.
 * Returns stop(), which resolves once a prune in flight has stopped; the
 * timer never keeps the process alive on its own. A minute's prune that comes
 * while the previous one still runs is skipped. With several coordinators on
 * one database only the maintenance leader prunes (`isLeader`, asked before
 * each batch; default: this one).
 *
 * @example
 * const stop = startRetention(store, logger, 7 * 86_400_000);
 */
export function startRetention(
  store: Store,
  logger: Logger,
  retentionMs: number,
  clock: () => number = Date.now,
  isLeader: () => boolean = () => true,
): () => Promise<void> {
  let stopped = false;
  const prune = async () => {
    let deleted = 0;
    try {
      for (;;) {
        if (stopped || !isLeader()) break;
        const batch = await store.pruneFinished(clock() - retentionMs);
        deleted += batch;
        if (batch === 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      logger.error({ err: error }, "pruning finished jobs failed; trying again in a minute");
    }
    if (deleted > 0) logger.info({ deleted, retentionMs }, "finished jobs past retention deleted");
  };
  // prune() never rejects: it logs its own errors.
  let inFlight: Promise<void> | undefined;
  const start = () => {
    inFlight ??= prune().finally(() => {
      inFlight = undefined;
    });
  };
  start();
  const timer = setInterval(start, EVERY_MS);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await inFlight;
  };
}
