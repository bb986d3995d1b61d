import {
  prepareAgentByTokenHash,
  prepareRegisterAgent,
  prepareRemoveAgent,
  prepareSetAgentState,
} from "./agents.js";
import { prepareCancel } from "./cancel.js";
import { prepareComplete } from "./complete.js";
import { openDatabase, type StoreContext } from "./database.js";
import { prepareEnqueue } from "./enqueue.js";
import { prepareExpireLeases } from "./expireLeases.js";
import { prepareExtendLeases } from "./extendLeases.js";
import { prepareGetJob } from "./getJob.js";
import { prepareHeartbeat } from "./heartbeat.js";
import type { Store, StoreSettings } from "./interfaces.js";
import { prepareLease } from "./lease.js";
import { prepareListJobs } from "./listJobs.js";
import { prepareListNodes } from "./listNodes.js";
import { preparePruneFinished } from "./pruneFinished.js";
import { prepareStats } from "./stats.js";

export { NODE_LOST_MESSAGE } from "./expireLeases.js";
export type * from "./interfaces.js";

/**
 * The SQLite store in `<dataDir>/labrun.db`: each verb is its own module with
 * its SQL beside it, prepared once here.
 *
 * @example
 * const store = openStore(dataDir, { leaseTtlMs: 10_000, maxAttempts: 3 });
 * const job = store.enqueue({ source, filename: "main.js" }, Date.now());
 */
export function openStore(dataDir: string, settings: StoreSettings): Store {
  const db = openDatabase(dataDir);
  const context: StoreContext = { db, settings: { ...settings } };
  const { getJob, readJob } = prepareGetJob(context);
  const expireLeases = prepareExpireLeases(context);
  const { listNodes, getNode } = prepareListNodes(context);
  const ping = db.prepare("SELECT 1");
  const anyQueued = db.prepare("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1").pluck();
  const hasQueued = () => anyQueued.get() !== undefined;
  return {
    enqueue: prepareEnqueue(context, getJob),
    getJob: readJob,
    listJobs: prepareListJobs(context),
    cancel: prepareCancel(context, getJob),
    registerAgent: prepareRegisterAgent(context),
    agentByTokenHash: prepareAgentByTokenHash(context),
    setAgentState: prepareSetAgentState(context, getNode),
    removeAgent: prepareRemoveAgent(context, expireLeases),
    lease: prepareLease(context, hasQueued),
    heartbeat: prepareHeartbeat(context),
    complete: prepareComplete(context, getJob),
    expireLeases,
    extendLeases: prepareExtendLeases(context),
    pruneFinished: preparePruneFinished(context),
    hasQueued,
    listNodes,
    stats: prepareStats(context),
    ping: () => void ping.get(),
    close: () => db.close(),
  };
}
