import type { Logger } from "pino";
import type { Store } from "./store/index.js";

const EVERY_MS = 60_000;

/**
 * Deletes finished jobs older than `retentionMs`, at start and then every
 * minute, a batch per event-loop turn so requests are served in between.
 * Returns stop(); the timer never keeps the process alive on its own.
 *
 * @example
 * const stop = startRetention(store, logger, 7 * 86_400_000);
 */
export function startRetention(
  store: Store,
  logger: Logger,
  retentionMs: number,
  clock: () => number = Date.now,
): () => void {
  let stopped = false;
  const prune = async () => {
    let deleted = 0;
    try {
      for (;;) {
        if (stopped) break;
        const batch = store.pruneFinished(clock() - retentionMs);
        deleted += batch;
        if (batch === 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (error) {
      logger.error({ err: error }, "pruning finished jobs failed; trying again in a minute");
    }
    if (deleted > 0) logger.info({ deleted, retentionMs }, "finished jobs past retention deleted");
  };
  void prune();
  const timer = setInterval(() => void prune(), EVERY_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
