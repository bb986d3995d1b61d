import type { JobLimits, LeasedJob } from "../../protocol/index.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { newId } from "./rows.js";

export function prepareLease({ db, settings }: StoreContext, hasQueued: () => boolean) {
  const agent = db.prepare<
    [string],
    { name: string; state: string; slots: number; held: number; max_limits: string | null }
  >(
    `SELECT name, state, slots, max_limits,
       (SELECT COUNT(*) FROM jobs WHERE agent_id = agents.id AND state IN ('leased', 'running')) AS held
     FROM agents WHERE id = ?`,
  );
  const oldestQueued = db.prepare<
    [{ room: number; timeoutMs: number; memoryMb: number; cpus: number }],
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
    // Jobs beyond the agent's largest limits stay queued for a bigger machine.
    `SELECT seq, id, source, filename, input, limits, attempts FROM jobs
     WHERE state = 'queued'
       AND json_extract(limits, '$.timeoutMs') <= @timeoutMs
       AND json_extract(limits, '$.memoryMb') <= @memoryMb
       AND json_extract(limits, '$.cpus') <= @cpus
     ORDER BY seq LIMIT @room`,
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
      const max: Partial<JobLimits> = self.max_limits ? JSON.parse(self.max_limits) : {};
      const fits = {
        room,
        timeoutMs: max.timeoutMs ?? Number.MAX_SAFE_INTEGER,
        memoryMb: max.memoryMb ?? Number.MAX_SAFE_INTEGER,
        cpus: max.cpus ?? Number.MAX_SAFE_INTEGER,
      };
      return oldestQueued.all(fits).map((row) => {
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
