import { type StoreContext, writeTransaction } from "./database.js";

export function prepareHeartbeat({ db, settings }: StoreContext) {
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");
  // Only the agent's current lease of a job still in flight is renewed; the
  // first renewal marks the job running.
  const renew = db.prepare(
    `UPDATE jobs SET lease_expires_at = @deadline,
       started_at = CASE WHEN state = 'leased' THEN @now ELSE started_at END,
       state = 'running'
     WHERE lease_id = @leaseId AND agent_id = @agentId AND state IN ('leased', 'running')`,
  );

  return writeTransaction(
    db,
    function heartbeat(agentId: string, running: string[], now: number): string[] {
      seen.run(now, agentId);
      const deadline = now + settings.leaseTtlMs;
      return [...new Set(running)].filter(
        (leaseId) => renew.run({ leaseId, agentId, deadline, now }).changes === 0,
      );
    },
  );
}
