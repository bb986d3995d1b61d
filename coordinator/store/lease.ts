import type { JobLimits, LeasedJob } from "../../protocol/index.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { newId } from "./rows.js";

export function prepareLease({ db, settings }: StoreContext, hasQueued: () => boolean) {
  const agent = db.prepare<[string], { name: string; state: string; slots: number; held: number }>(
    `SELECT name, state, slots,
       (SELECT COUNT(*) FROM jobs WHERE agent_id = agents.id AND state IN ('leased', 'running')) AS held
     FROM agents WHERE id = ?`,
  );
  const oldestQueued = db.prepare<
    [number],
    {
      seq: number;
      id: string;
      source: string;
      filename: string;
      input: string;
      limits: string;
      attempts: number;
    }
  >(
    `SELECT seq, id, source, filename, input, limits, attempts FROM jobs
     WHERE state = 'queued' ORDER BY seq LIMIT ?`,
  );
  const markLeased = db.prepare(
    `UPDATE jobs SET state = 'leased', agent_id = @agentId, node = @node, lease_id = @leaseId,
       lease_expires_at = @deadline, leased_at = @now, started_at = NULL, attempts = attempts + 1
     WHERE seq = @seq`,
  );
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");

  const leaseInTransaction = writeTransaction(
    db,
    function lease(agentId: string, free: number, now: number): LeasedJob[] {
      const self = agent.get(agentId);
      if (!self) return [];
      seen.run(now, agentId);
      // Never more than the agent's free slots as the queue counts them, so an
      // agent that lost track of a lease cannot overcommit its machine.
      const room = Math.min(free, self.slots - self.held);
      if (self.state !== "ready" || room <= 0) return [];
      return oldestQueued.all(room).map((row) => {
        const leaseId = newId("l");
        markLeased.run({
          seq: row.seq,
          agentId,
          node: self.name,
          leaseId,
          deadline: now + settings.leaseTtlMs,
          now,
        });
        return {
          id: row.id,
          leaseId,
          attempt: row.attempts + 1,
          spec: {
            source: row.source,
            filename: row.filename,
            input: JSON.parse(row.input) as LeasedJob["spec"]["input"],
            limits: JSON.parse(row.limits) as JobLimits,
          },
        };
      });
    },
  );
  // Nothing queued: answer without a write transaction. Long-polls ask again
  // on every wake-up, and an empty BEGIN IMMEDIATE … COMMIT per ask was most of
  // the coordinator's work at moderate load. (Heartbeats keep last-seen fresh.)
  return (agentId: string, free: number, now: number): LeasedJob[] =>
    hasQueued() ? leaseInTransaction(agentId, free, now) : [];
}
