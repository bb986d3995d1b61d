import { isTerminal, type Job, type JobState } from "../../protocol/index.js";
import { notFound } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import type { Changed } from "./interfaces.js";
import { coordinatorOutcome } from "./rows.js";
import type { SettleBatches } from "./settleBatches.js";

export function prepareCancel(
  { db }: StoreContext,
  getJob: (id: string) => Job,
  settleBatches: SettleBatches,
) {
  const find = db.prepare<
    [string],
    {
      state: JobState;
      started_at: number | null;
      leased_at: number | null;
      batch_id: string | null;
    }
  >("SELECT state, started_at, leased_at, batch_id FROM jobs WHERE id = ?");
  // lease_id and agent_id stay: the agent's next heartbeat for that lease is
  // answered "cancel", and its late result is refused as stale.
  const markCancelled = db.prepare(
    `UPDATE jobs SET state = 'cancelled', outcome = @outcome, finished_at = @now,
       lease_expires_at = NULL
     WHERE id = @id`,
  );

  return writeTransaction(db, function cancel(id: string, now: number): Changed<Job> {
    const row = find.get(id);
    if (!row) throw notFound(`job ${id}`);
    if (isTerminal(row.state)) return { value: getJob(id), changed: false };
    const since = row.started_at ?? row.leased_at ?? now;
    markCancelled.run({
      id,
      now,
      outcome: coordinatorOutcome("CANCELLED", "cancelled by a client", now - since),
    });
    settleBatches([row.batch_id], now);
    return { value: getJob(id), changed: true };
  });
}
