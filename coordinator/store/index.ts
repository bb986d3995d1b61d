import {
  prepareAgentByTokenHash,
  prepareRegisterAgent,
  prepareRemoveAgent,
  prepareSetAgentState,
} from "./agents.js";
import { prepareAudit } from "./audit.js";
import { prepareBatchFailures } from "./batchFailures.js";
import { prepareBatchItemEnds } from "./batchItemEnds.js";
import { prepareBatchResults } from "./batchResults.js";
import { prepareCancel } from "./cancel.js";
import { prepareCancelBatch } from "./cancelBatch.js";
import { startCheckpointer } from "./checkpointer.js";
import { prepareComplete } from "./complete.js";
import { openDatabase, type StoreContext } from "./database.js";
import { prepareEnqueue } from "./enqueue.js";
import { prepareEnqueueBatch } from "./enqueueBatch.js";
import { prepareExpireLeases } from "./expireLeases.js";
import { prepareExtendLeases } from "./extendLeases.js";
import { installUsageCharge } from "./fairShare.js";
import { prepareClaimTokens } from "./fixedTokens.js";
import { prepareGetBatch } from "./getBatch.js";
import { prepareGetJob } from "./getJob.js";
import { prepareHeartbeat } from "./heartbeat.js";
import type { Store, StoreSettings } from "./interfaces.js";
import { prepareLeadership } from "./leadership.js";
import { prepareLease } from "./lease.js";
import { prepareListJobs } from "./listJobs.js";
import { prepareListNodes } from "./listNodes.js";
import { preparePruneFinished } from "./pruneFinished.js";
import { prepareRetryBatch } from "./retryBatch.js";
import { prepareCountBatch, prepareSettleBatches } from "./settleBatches.js";
import { prepareStats } from "./stats.js";
import { halfLifeOf, prepareUsers } from "./users.js";

export { NODE_LOST_MESSAGE } from "./expireLeases.js";
export type * from "./interfaces.js";

/** The store's verbs as the SQLite modules implement them: synchronous. */
export type SyncStore = {
  [K in keyof Store]: Store[K] extends (...args: infer A) => Promise<infer R>
    ? (...args: A) => R
    : never;
};

/**
 * The SQLite store in `<dataDir>/labrun.db`: each verb is its own module with
 * its SQL beside it, prepared once here. better-sqlite3 is synchronous and
 * each verb is one transaction, so the verbs stay synchronous inside and are
 * made asynchronous only here, at the interface (see `asynchronous`).
 *
 * @example
 * const store = openStore(dataDir, { leaseTtlMs: 10_000, maxAttempts: 3 });
 * const job = await store.enqueue({ source, filename: "main.js" }, Date.now());
 */
export function openStore(dataDir: string, settings: StoreSettings): Store {
  return asynchronous(openSyncStore(dataDir, settings));
}

/**
 * Each verb as a function that runs it at once and returns a settled promise:
 * its value, or its error as a rejection (never a synchronous throw). The
 * transaction has committed before the caller's `await` resumes, and no
 * extra promise or microtask is added beyond the one the caller awaits.
 */
export function asynchronous(sync: SyncStore): Store {
  const store: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const [name, verb] of Object.entries(sync) as [string, (...args: unknown[]) => unknown][]) {
    store[name] = (...args) => {
      try {
        return Promise.resolve(verb(...args));
      } catch (error) {
        return Promise.reject(error);
      }
    };
  }
  return store as unknown as Store;
}

/** The SQLite store's verbs, synchronous (openStore wraps them). */
function openSyncStore(dataDir: string, settings: StoreSettings): SyncStore {
  const db = openDatabase(dataDir);
  const checkpointer = startCheckpointer(db);
  const context: StoreContext = { db, settings: { ...settings } };
  installUsageCharge(db, halfLifeOf(settings), settings.leaseTtlMs);
  const { getJob, readJob } = prepareGetJob(context);
  const countBatch = prepareCountBatch(context);
  const settleBatches = prepareSettleBatches(context, countBatch);
  const { getBatch, listBatches } = prepareGetBatch(context, countBatch);
  const expireLeases = prepareExpireLeases(context, settleBatches);
  const { complete, completeMany } = prepareComplete(context, getJob, settleBatches);
  const { listNodes, getNode } = prepareListNodes(context);
  const ping = db.prepare("SELECT 1");
  const anyQueued = db.prepare("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1").pluck();
  const hasQueued = () => anyQueued.get() !== undefined;
  return {
    ...prepareUsers(context, settleBatches),
    ...prepareAudit(context),
    claimTokens: prepareClaimTokens(context),
    ...prepareLeadership(context),
    enqueue: prepareEnqueue(context, getJob),
    getJob: readJob,
    listJobs: prepareListJobs(context),
    cancel: prepareCancel(context, getJob, settleBatches),
    enqueueBatch: prepareEnqueueBatch(context),
    getBatch,
    listBatches,
    batchResults: prepareBatchResults(context),
    batchItemEnds: prepareBatchItemEnds(context),
    batchFailures: prepareBatchFailures(context),
    cancelBatch: prepareCancelBatch(context, getBatch, settleBatches),
    retryBatch: prepareRetryBatch(context),
    registerAgent: prepareRegisterAgent(context),
    agentByTokenHash: prepareAgentByTokenHash(context),
    setAgentState: prepareSetAgentState(context, getNode),
    removeAgent: prepareRemoveAgent(context, expireLeases),
    lease: prepareLease(context, hasQueued),
    heartbeat: prepareHeartbeat(context),
    complete,
    completeMany,
    expireLeases,
    extendLeases: prepareExtendLeases(context),
    pruneFinished: preparePruneFinished(context),
    hasQueued,
    listNodes,
    stats: prepareStats(context),
    ping: () => void ping.get(),
    close: () => {
      const stopped = checkpointer.stop();
      db.close();
      return stopped;
    },
  };
}
