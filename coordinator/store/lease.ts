import {
  type AgentCapacity,
  DEFAULT_LIMITS,
  type LeasedJob,
  LIMIT_NAMES,
  type MaxLimits,
  type Runtime,
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
      runtimes: string | null;
    }
  >(
    `SELECT name, state, slots, max_limits, capacity, runtimes,
       (SELECT COUNT(*) FROM jobs WHERE agent_id = agents.id AND state IN ('leased', 'running')) AS held
     FROM agents WHERE id = ?`,
  );
  // Only asked of agents with a capacity: the limits of the jobs they hold, summed.
  const heldLimits = db.prepare<[string], { memoryMb: number; cpus: number }>(
    `SELECT COALESCE(SUM(json_extract(limits, '$.memoryMb')), 0) AS memoryMb,
       COALESCE(SUM(json_extract(limits, '$.cpus')), 0) AS cpus
     FROM jobs WHERE agent_id = ? AND state IN ('leased', 'running')`,
  );
  const oldestQueued = db.prepare<[Record<string, number | string>], QueuedRow>(
    // Jobs beyond the agent's largest limits stay queued for a bigger machine,
    // and jobs in a runtime it does not offer for one that does.
    // A job stored before a limit existed runs with its default.
    `SELECT seq, id, source, filename, runtime, input, limits, attempts FROM jobs
     WHERE state = 'queued'
       AND runtime IN (SELECT value FROM json_each(@runtimes))
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
      // An agent registered before runtimes runs node jobs only.
      const fits: Record<string, number | string> = { room, runtimes: self.runtimes ?? '["node"]' };
      // A limit the agent names no bound for (an older agent) does not hold a job back.
      for (const name of LIMIT_NAMES) fits[name] = max[name] ?? Number.MAX_SAFE_INTEGER;
      let candidates: QueuedRow[];
      if (self.capacity) {
        // Only jobs that fit in what is left are candidates, so one that can
        // never fit here does not take the place of one that does.
        const left = capacityLeft(JSON.parse(self.capacity), heldLimits.get(agentId));
        if (left.memoryMb <= 0 || left.milliCpus <= 0) return [];
        fits.memoryMb = Math.min(Number(fits.memoryMb ?? left.memoryMb), left.memoryMb);
        // Half a thousandth over, so 0.1 + 0.2 (0.30000000000000004) fits in 0.3.
        fits.cpus = Math.min(
          Number(fits.cpus ?? Number.MAX_SAFE_INTEGER),
          (left.milliCpus + 0.5) / 1000,
        );
        candidates = withinCapacity(oldestQueued.all(fits), left);
      } else {
        candidates = oldestQueued.all(fits);
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
            runtime: row.runtime,
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

interface QueuedRow {
  seq: number;
  id: string;
  source: string;
  filename: string;
  runtime: Runtime;
  input: string;
  limits: string;
  attempts: number;
}

const milli = (cpus: number) => Math.round(cpus * 1000);

/** What an agent's capacity leaves beside the jobs it holds (cores in thousandths). */
function capacityLeft(
  capacity: AgentCapacity,
  held: { memoryMb: number; cpus: number } | undefined,
): { memoryMb: number; milliCpus: number } {
  return {
    memoryMb: (capacity.memoryMb ?? Number.POSITIVE_INFINITY) - (held?.memoryMb ?? 0),
    milliCpus:
      capacity.cpus === undefined
        ? Number.POSITIVE_INFINITY
        : milli(capacity.cpus) - milli(held?.cpus ?? 0),
  };
}

/**
 * The candidates, oldest first, that fit together in what is left; one that
 * does not fit beside the older ones stays queued (a smaller, younger one may
 * still go). Cores are counted in thousandths, so 0.1 + 0.2 fits in 0.3.
 */
function withinCapacity(
  candidates: QueuedRow[],
  left: { memoryMb: number; milliCpus: number },
): QueuedRow[] {
  let { memoryMb, milliCpus } = left;
  return candidates.filter((row) => {
    const limits = storedLimits(row.limits);
    if (limits.memoryMb > memoryMb || milli(limits.cpus) > milliCpus) return false;
    memoryMb -= limits.memoryMb;
    milliCpus -= milli(limits.cpus);
    return true;
  });
}
