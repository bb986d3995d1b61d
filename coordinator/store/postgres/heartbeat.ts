import { type PgContext, query, textArray } from "./database.js";

// One statement, one round trip: the agent is seen, and only its current
// leases of jobs still in flight are renewed; the first renewal marks the
// job running. What comes back is what was renewed.
// The jobs' UPDATE reads the agents' one (an InitPlan, run first), so the
// agent's row is locked before its jobs' rows, in the order a lease and a
// result group lock them; an unread data-modifying CTE runs after the main
// statement, the other order, which deadlocked with a result group.
const HEARTBEAT = `WITH seen AS (
    UPDATE agents SET last_heartbeat_at = $3 WHERE id = $2 RETURNING id
  )
  UPDATE jobs SET lease_expires_at = $4,
    started_at = CASE WHEN state = 'leased' THEN $3 ELSE started_at END,
    state = 'running'
  WHERE lease_id = ANY ($1::text[]) AND agent_id = $2 AND state IN ('leased', 'running')
    AND EXISTS (SELECT 1 FROM seen)
  RETURNING lease_id`;

export function prepareHeartbeat({ sql, settings }: PgContext) {
  /** The leases among `running` that the agent must stop (not its current ones). */
  return async function heartbeat(
    agentId: string,
    running: string[],
    now: number,
  ): Promise<string[]> {
    const asked = [...new Set(running)];
    const renewed = new Set(
      (
        await query<{ lease_id: string }>(sql, HEARTBEAT, [
          textArray(sql, asked),
          agentId,
          now,
          now + settings.leaseTtlMs,
        ])
      ).map((row) => row.lease_id),
    );
    return asked.filter((leaseId) => !renewed.has(leaseId));
  };
}
