import { isTerminal, type Job, type JobState } from "../../../protocol/index.js";
import { notFound } from "../../errors.js";
import type { Changed } from "../interfaces.js";
import { coordinatorOutcome } from "../rows.js";
import { type PgContext, query, writeTransaction } from "./database.js";
import type { GetJob } from "./getJob.js";
import { settleBatches } from "./settleBatches.js";

const FIND = `SELECT state, started_at, leased_at, batch_id FROM jobs WHERE id = $1 FOR UPDATE`;
// lease_id and agent_id stay: the agent's next heartbeat for that lease is
// answered "cancel", and its late result is refused as stale.
const MARK_CANCELLED = `UPDATE jobs SET state = 'cancelled', outcome = $3, finished_at = $2,
    lease_expires_at = NULL
  WHERE id = $1`;

export function prepareCancel({ sql }: PgContext, getJob: GetJob) {
  return (id: string, now: number): Promise<Changed<Job>> =>
    writeTransaction(sql, async (tx) => {
      const [row] = await query<{
        state: JobState;
        started_at: number | null;
        leased_at: number | null;
        batch_id: string | null;
      }>(tx, FIND, [id]);
      if (!row) throw notFound(`job ${id}`);
      if (isTerminal(row.state)) return { value: await getJob(id, tx), changed: false };
      const since = row.started_at ?? row.leased_at ?? now;
      await query(tx, MARK_CANCELLED, [
        id,
        now,
        coordinatorOutcome("CANCELLED", "cancelled by a client", now - since),
      ]);
      await settleBatches(tx, [row.batch_id], now);
      return { value: await getJob(id, tx), changed: true };
    });
}
