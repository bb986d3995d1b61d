import {
  type AgentCapacity,
  DEFAULT_LIMITS,
  type LeasedJob,
  LIMIT_NAMES,
  type MaxLimits,
} from "../../protocol/index.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { newId, storedLimits } from "./rows.js";

export function prepareLease({ db, settings }: StoreContext, hasQueued: () => boolean) {
  const agent = db.prepare<
    [string],
    {
      name: string;
      state: string;
      slots: number;
      held: number;
      max_limits: string | null;
      capacity: string | null;
    }
  >(
    `SELECT name, state, slots, max_limits, capacity,
       (SELECT COUNT(*) FROM jobs WHERE agent_id = agents.id AND state IN ('leased', 'running')) AS held
     FROM agents WHERE id = ?`,
  );
  // Only asked of agents with a capacity: the limits of the jobs they hold, summed.
  const heldLimits = db.prepare<[string], { memoryMb: number; cpus: number }>(
    `SELECT COALESCE(SUM(json_extract(limits, '$.memoryMb')), 0) AS memoryMb,
       COALESCE(SUM(json_extract(limits, '$.cpus')), 0) AS cpus
     FROM jobs WHERE agent_id = ? AND state IN ('leased', 'running')`,
  );
  const oldestQueued = db.prepare<
    [Record<string, number>],
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
    // A job stored before a limit existed runs with its default.
    `SELECT seq, id, source, filename, input, limits, attempts FROM jobs
     WHERE state = 'queued'
       ${LIMIT_NAMES.map(
         (name) =>
           `AND COALESCE(json_extract(limits, '$.${name}'), ${DEFAULT_LIMITS[name]}) <= @${name}`,
       ).join("\n       ")}
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
      const max: MaxLimits = self.max_limits ? JSON.parse(self.max_limits) : {};
      const fits: Record<string, number> = { room };
      // A limit the agent names no bound for (an older agent) does not hold a job back.
      for (const name of LIMIT_NAMES) fits[name] = max[name] ?? Number.MAX_SAFE_INTEGER;
      let candidates = oldestQueued.all(fits);
      if (self.capacity) {
        candidates = withinCapacity(candidates, JSON.parse(self.capacity), heldLimits.get(agentId));
      }
      return candidates.map((row) => {
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
            limits: storedLimits(row.limits),
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

/**
 * The candidates, oldest first, that fit in what the agent's capacity leaves
 * beside the jobs it holds; one that does not fit stays queued (a smaller,
 * younger one may still go). Cores are compared in thousandths, so 0.1 + 0.2
 * fits in 0.3.
 */
function withinCapacity<Row extends { limits: string }>(
  candidates: Row[],
  capacity: AgentCapacity,
  held: { memoryMb: number; cpus: number } | undefined,
): Row[] {
  const milli = (cpus: number) => Math.round(cpus * 1000);
  let memoryLeft = (capacity.memoryMb ?? Number.POSITIVE_INFINITY) - (held?.memoryMb ?? 0);
  let cpusLeft =
    capacity.cpus === undefined
      ? Number.POSITIVE_INFINITY
      : milli(capacity.cpus) - milli(held?.cpus ?? 0);
  return candidates.filter((row) => {
    const limits = storedLimits(row.limits);
    if (limits.memoryMb > memoryLeft || milli(limits.cpus) > cpusLeft) return false;
    memoryLeft -= limits.memoryMb;
    cpusLeft -= milli(limits.cpus);
    return true;
  });
}
