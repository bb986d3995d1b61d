import type { Store, StoreSettings } from "../interfaces.js";
import { halfLifeOf } from "../users.js";
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
import { prepareComplete } from "./complete.js";
import { openPool, type PgContext, type PoolOptions, query } from "./database.js";
import { prepareEnqueue } from "./enqueue.js";
import { prepareEnqueueBatch } from "./enqueueBatch.js";
import { prepareExpireLeases } from "./expireLeases.js";
import { prepareExtendLeases } from "./extendLeases.js";
import { prepareClaimTokens } from "./fixedTokens.js";
import { prepareGetBatch } from "./getBatch.js";
import { prepareGetJob } from "./getJob.js";
import { prepareHeartbeat } from "./heartbeat.js";
import { prepareLeadership } from "./leadership.js";
import { prepareHasQueued, prepareLease } from "./lease.js";
import { prepareListJobs } from "./listJobs.js";
import { prepareListNodes } from "./listNodes.js";
import { migrate } from "./migrations.js";
import { preparePruneFinished } from "./pruneFinished.js";
import { prepareRetryBatch } from "./retryBatch.js";
import { prepareStats } from "./stats.js";
import { prepareUsers } from "./users.js";

export type { PoolOptions } from "./database.js";

/**
 * The PostgreSQL store on `url` (`postgres://user@host:port/db`): the same
 * verbs as the SQLite store, each its own module with its SQL beside it.
 * Opening brings the schema up to date (once, under a lock, however many
 * coordinators open it together).
 *
 * @example
 * const store = await openPostgresStore("postgres://labrun@db/labrun", { leaseTtlMs: 10_000, maxAttempts: 3 });
 * const job = await store.enqueue({ source, filename: "main.js" }, Date.now());
 */
export async function openPostgresStore(
  url: string,
  settings: StoreSettings,
  pool: PoolOptions = {},
): Promise<Store> {
  // What the usage-charge trigger reads (migrations.ts): this coordinator's half-life and TTL.
  const sql = openPool(url, {
    // A coordinator stalled inside a transaction (SIGSTOP, a VM pause) holds
    // row locks every other coordinator waits on: the server ends it well
    // before the stall could let leases expire (test/faults/pg-coordinator-sigstop.test.ts).
    idleInTransactionSeconds: Math.max(1, Math.floor(settings.leaseTtlMs / 2_000)),
    ...pool,
    session: {
      "labrun.half_life_ms": String(halfLifeOf(settings)),
      "labrun.lease_ttl_ms": String(Math.trunc(settings.leaseTtlMs)),
      ...pool.session,
    },
  });
  try {
    await migrate(sql);
  } catch (error) {
    await sql.end({ timeout: 5 });
    throw error;
  }
  const context: PgContext = { sql, settings: { ...settings } };
  const { getJob, readJob } = prepareGetJob(context);
  const { getBatch, listBatches } = prepareGetBatch(context);
  const { expireLeases, inTransaction: expireInTransaction } = prepareExpireLeases(context);
  const { complete, completeMany } = prepareComplete(context, getJob);
  const { listNodes, getNode } = prepareListNodes(context);
  const hasQueued = prepareHasQueued(context);
  return {
    ...prepareUsers(context),
    ...prepareAudit(context),
    claimTokens: prepareClaimTokens(context),
    ...prepareLeadership(context),
    enqueue: prepareEnqueue(context),
    getJob: readJob,
    listJobs: prepareListJobs(context),
    cancel: prepareCancel(context, getJob),
    enqueueBatch: prepareEnqueueBatch(context),
    getBatch: (id) => getBatch(id),
    listBatches,
    batchResults: prepareBatchResults(context),
    batchItemEnds: prepareBatchItemEnds(context),
    batchFailures: prepareBatchFailures(context),
    cancelBatch: prepareCancelBatch(context, getBatch),
    retryBatch: prepareRetryBatch(context),
    registerAgent: prepareRegisterAgent(context),
    agentByTokenHash: prepareAgentByTokenHash(context),
    setAgentState: prepareSetAgentState(context, getNode),
    removeAgent: prepareRemoveAgent(context, expireInTransaction),
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
    ping: async () => void (await query(sql, "SELECT 1")),
    close: () => sql.end({ timeout: 5 }),
  };
}
