import { type ExpiredRow, judgeExpiry } from "../expireLeases.js";
import type { ExpiredLeases } from "../interfaces.js";
import {
  bigintArray,
  type PgContext,
  type Queryable,
  query,
  textArray,
  writeTransaction,
} from "./database.js";
import { settleBatches } from "./settleBatches.js";

// SKIP LOCKED: a row another transaction holds is being completed or
// renewed right now; the next sweep sees what that left.
const DUE = `SELECT seq, id, attempts, max_attempts, leased_at, started_at, batch_id FROM jobs
  WHERE lease_expires_at < $1 AND state IN ('leased', 'running')
  ORDER BY seq FOR UPDATE SKIP LOCKED`;
const REQUEUE = `UPDATE jobs SET state = 'queued', agent_id = NULL, node = NULL, lease_id = NULL,
    lease_expires_at = NULL, leased_at = NULL, started_at = NULL
  WHERE seq = ANY ($1::bigint[])`;
// The node and lease stay on the record: which node was lost, and a late
// result from it is refused as stale.
const FAIL = `UPDATE jobs SET state = 'failed', outcome = lost.outcome, finished_at = $3,
    started_at = COALESCE(started_at, leased_at), lease_expires_at = NULL
  FROM unnest($1::bigint[], $2::text[]) AS lost(seq, outcome)
  WHERE jobs.seq = lost.seq`;

/** Leases past their deadline, inside `tx`: queued again, or failed with NODE_LOST. */
export function prepareExpireInTransaction({ settings }: PgContext) {
  return async function expireLeases(tx: Queryable, now: number): Promise<ExpiredLeases> {
    const expired: ExpiredLeases = { requeued: [], failed: [], batches: [] };
    const requeue: number[] = [];
    const fail: { seq: number; outcome: string }[] = [];
    for (const row of await query<ExpiredRow>(tx, DUE, [now])) {
      const outcome = judgeExpiry(row, now, settings.leaseTtlMs, expired);
      if (outcome === undefined) requeue.push(row.seq);
      else fail.push({ seq: row.seq, outcome });
    }
    if (requeue.length > 0) await query(tx, REQUEUE, [bigintArray(tx, requeue)]);
    if (fail.length > 0) {
      await query(tx, FAIL, [
        bigintArray(
          tx,
          fail.map((row) => row.seq),
        ),
        textArray(
          tx,
          fail.map((row) => row.outcome),
        ),
        now,
      ]);
    }
    await settleBatches(tx, expired.batches, now);
    return expired;
  };
}

export function prepareExpireLeases(context: PgContext) {
  const inTransaction = prepareExpireInTransaction(context);
  return {
    expireLeases: (now: number): Promise<ExpiredLeases> =>
      writeTransaction(context.sql, (tx) => inTransaction(tx, now)),
    inTransaction,
  };
}
