import type { StoreContext } from "./database.js";
import { writeTransaction } from "./database.js";
import type { ExpiredLeases } from "./interfaces.js";
import { coordinatorOutcome } from "./rows.js";
import type { SettleBatches } from "./settleBatches.js";

export const NODE_LOST_MESSAGE = "the node running this job stopped answering";

/** A job whose lease is past its deadline, as both stores read it. */
export interface ExpiredRow {
  seq: number;
  id: string;
  attempts: number;
  max_attempts: number;
  leased_at: number | null;
  started_at: number | null;
  batch_id: string | null;
}

/**
 * What an expired lease does to its job, recorded in `expired`: with attempts
 * left it is queued again (undefined), else it fails with the NODE_LOST
 * outcome returned (JSON text). The one rule of both stores.
 */
export function judgeExpiry(
  row: ExpiredRow,
  now: number,
  leaseTtlMs: number,
  expired: ExpiredLeases,
): string | undefined {
  if (row.attempts < row.max_attempts) {
    expired.requeued.push(row.id);
    return undefined;
  }
  const since = row.started_at ?? row.leased_at ?? now;
  expired.failed.push(row.id);
  if (row.batch_id !== null && !expired.batches.includes(row.batch_id)) {
    expired.batches.push(row.batch_id);
  }
  return coordinatorOutcome(
    "NODE_LOST",
    NODE_LOST_MESSAGE,
    now - since,
    `no heartbeat for ${leaseTtlMs} ms, on attempt ${row.attempts} of ${row.max_attempts}`,
  );
}

export function prepareExpireLeases({ db, settings }: StoreContext, settleBatches: SettleBatches) {
  const due = db.prepare<[number], ExpiredRow>(
    `SELECT seq, id, attempts, max_attempts, leased_at, started_at, batch_id FROM jobs
     WHERE lease_expires_at < ? AND state IN ('leased', 'running')`,
  );
  const requeue = db.prepare(
    `UPDATE jobs SET state = 'queued', agent_id = NULL, node = NULL, lease_id = NULL,
       lease_expires_at = NULL, leased_at = NULL, started_at = NULL
     WHERE seq = ?`,
  );
  // The node and lease stay on the record: which node was lost, and a late
  // result from it is refused as stale.
  const fail = db.prepare(
    `UPDATE jobs SET state = 'failed', outcome = @outcome, finished_at = @now,
       started_at = COALESCE(started_at, leased_at), lease_expires_at = NULL
     WHERE seq = @seq`,
  );

  return writeTransaction(db, function expireLeases(now: number): ExpiredLeases {
    const expired: ExpiredLeases = { requeued: [], failed: [], batches: [] };
    for (const row of due.all(now)) {
      const outcome = judgeExpiry(row, now, settings.leaseTtlMs, expired);
      if (outcome === undefined) requeue.run(row.seq);
      else fail.run({ seq: row.seq, now, outcome });
    }
    settleBatches(expired.batches, now);
    return expired;
  });
}
