import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { Notifier } from "../notifier.js";
import type { Store } from "../store/index.js";
import { isPostgresUrl } from "../store/open.js";
import { ClusterNotifier } from "./clusterNotifier.js";
import { electLeader, type Leadership, soleLeader } from "./leader.js";
import { openPgWakeChannel } from "./pgChannel.js";

export type { Leadership } from "./leader.js";

/** What a coordinator shares with the others on its store: wake-ups and one maintenance leader. */
export interface Cluster {
  /** This coordinator among the others (host, pid, a random part): its wakes' sender, its lease's holder. */
  id: string;
  /** The routes' and sweeper's notifier. */
  notifier: Notifier;
  /** Whether this coordinator runs the sweeper's expiry and retention now. */
  leadership: Leadership;
  /** Gives up the leadership and stops listening (before the store closes). */
  close(): Promise<void>;
}

/**
 * Joins the coordinators on `location`'s store. PostgreSQL: wakes go to the
 * others by LISTEN/NOTIFY (ClusterNotifier) and the maintenance leader is
 * elected through the database, on a lease of `leaseTtlMs`. SQLite has one
 * coordinator per file: a plain Notifier, and it always leads.
 *
 * @example
 * const cluster = await joinCluster(config.store ?? config.dataDir, store, config.leaseTtlMs, logger);
 * const app = createApp({ store, notifier: cluster.notifier, ... });
 */
export async function joinCluster(
  location: string,
  store: Store,
  leaseTtlMs: number,
  logger: Logger,
): Promise<Cluster> {
  const id = `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  if (!isPostgresUrl(location)) {
    return { id, notifier: new Notifier(), leadership: soleLeader, close: async () => {} };
  }
  const channel = openPgWakeChannel(location);
  const notifier = new ClusterNotifier(id, channel, logger);
  try {
    await notifier.listen();
  } catch (error) {
    await channel.close();
    throw new Error(
      `could not LISTEN for other coordinators' wake-ups: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const leadership = electLeader({ store, holder: id, ttlMs: leaseTtlMs, logger });
  return {
    id,
    notifier,
    leadership,
    async close() {
      await leadership.stop();
      await notifier.drained();
      await channel.close();
    },
  };
}
