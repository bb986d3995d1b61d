import {
  type AgentCapacity,
  DEFAULT_LIMITS,
  type JobLimits,
  type LeasedJob,
  LIMIT_NAMES,
  type MaxLimits,
  type Runtime,
} from "../../protocol/index.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { newLeaseIds, storedLimits } from "./rows.js";

/** The lease's statements that must use their index, exported for a test of their plans. */
export const LEASE_SQL = {
  // Single jobs through jobs_singles_queued, named: the planner would take
  // jobs_by_state and walk past every queued item of a big batch.
  // Jobs beyond the agent's largest limits stay queued for a bigger machine.
  // A job stored before a limit existed runs with its default.
  // Jobs in a runtime the agent does not offer wait for one that does.
  singles: `SELECT seq, id, source, filename, runtime, input, limits, attempts
     FROM jobs INDEXED BY jobs_singles_queued
     WHERE state = 'queued' AND batch_id IS NULL
       AND runtime IN (SELECT value FROM json_each(@runtimes))
       ${LIMIT_NAMES.map(
         (name) =>
           `AND COALESCE(json_extract(limits, '$.${name}'), ${DEFAULT_LIMITS[name]}) <= @${name}`,
       ).join("\n       ")}
     ORDER BY seq LIMIT @room`,
  // A batch's queued items, oldest first, from jobs_by_batch_state alone.
  items: `SELECT seq, id, input, attempts FROM jobs INDEXED BY jobs_by_batch_state
     WHERE batch_id = ? AND state = 'queued' ORDER BY seq LIMIT ?`,
};

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
  const oldestQueued = db.prepare<[Record<string, number | string>], QueuedRow>(LEASE_SQL.singles);
  const activeBatches = db.prepare<[], BatchStreamRow>(
    `SELECT id, source, filename, runtime, limits, max_parallel FROM batches
     WHERE finished_at IS NULL AND cancelled_at IS NULL ORDER BY seq`,
  );
  const batchInFlight = db
    .prepare<[string], number>(
      "SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND state IN ('leased', 'running')",
    )
    .pluck();
  const queuedItems = db.prepare<
    [string, number],
    Omit<QueuedRow, "source" | "filename" | "runtime" | "limits">
  >(LEASE_SQL.items);
  const markLeased = db.prepare(
    `UPDATE jobs SET state = 'leased', agent_id = @agentId, node = @node, lease_id = @leaseId,
       lease_expires_at = @deadline, leased_at = @now, started_at = NULL, attempts = attempts + 1
     WHERE seq = @seq`,
  );
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");
  const roundRobin = new RoundRobin();

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
      let left: CapacityLeft | undefined;
      if (self.capacity) {
        // Only jobs that fit in what is left are candidates, so one that can
        // never fit here does not take the place of one that does.
        left = capacityLeft(JSON.parse(self.capacity), heldLimits.get(agentId));
        if (left.memoryMb <= 0 || left.milliCpus <= 0) return [];
        fits.memoryMb = Math.min(Number(fits.memoryMb ?? left.memoryMb), left.memoryMb);
        // Half a thousandth over, so 0.1 + 0.2 (0.30000000000000004) fits in 0.3.
        fits.cpus = Math.min(
          Number(fits.cpus ?? Number.MAX_SAFE_INTEGER),
          (left.milliCpus + 0.5) / 1000,
        );
      }
      const runtimes = JSON.parse(String(fits.runtimes)) as Runtime[];
      const streams: Stream[] = [{ key: SINGLES, rows: oldestQueued.all(fits) }];
      for (const batch of activeBatches.all()) {
        if (!runtimes.includes(batch.runtime)) continue;
        const limits = storedLimits(batch.limits);
        // A batch's items share its limits: it fits this agent or not, as a whole.
        if (
          LIMIT_NAMES.some((name) => limits[name] > Number(fits[name] ?? Number.MAX_SAFE_INTEGER))
        ) {
          continue;
        }
        const headroom =
          batch.max_parallel === null
            ? room
            : batch.max_parallel - (batchInFlight.get(batch.id) ?? 0);
        if (headroom <= 0) continue;
        const rows = queuedItems.all(batch.id, Math.min(room, headroom)).map((item) => ({
          ...item,
          source: batch.source,
          filename: batch.filename,
          runtime: batch.runtime,
          limits: batch.limits,
        }));
        if (rows.length > 0) streams.push({ key: batch.id, rows });
      }
      const dealt = roundRobin.deal(streams, room);
      const candidates = left ? withinCapacity(dealt, left) : dealt;
      const leaseIds = newLeaseIds(candidates.length);
      const limitsOf = new Map<string, JobLimits>();
      return candidates.map((row, position) => {
        const leaseId = leaseIds[position] ?? "";
        // A batch's items share one limits text: parsed once per lease.
        let limits = limitsOf.get(row.limits);
        if (!limits) {
          limits = storedLimits(row.limits);
          limitsOf.set(row.limits, limits);
        }
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
            limits,
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

/** The stream of single jobs, beside one stream per batch. */
const SINGLES = "";

interface Stream {
  key: string;
  rows: QueuedRow[];
}

interface BatchStreamRow {
  id: string;
  source: string;
  filename: string;
  runtime: Runtime;
  limits: string;
  max_parallel: number | null;
}

/**
 * Round-robin between the streams of queued work (the single jobs, and each
 * batch): the stream served longest ago goes first, one job per turn. So a
 * single job queued behind a 10,000-item batch takes the next free slot.
 * The turns live in memory: after a restart every stream starts equal.
 */
class RoundRobin {
  #tick = 0;
  readonly #lastServed = new Map<string, number>();

  /** Up to `room` rows, taken one per stream per turn, least recently served first. */
  deal(streams: Stream[], room: number): QueuedRow[] {
    const order = [...streams].sort(
      (a, b) => (this.#lastServed.get(a.key) ?? 0) - (this.#lastServed.get(b.key) ?? 0),
    );
    const dealt: QueuedRow[] = [];
    for (let turn = 0; dealt.length < room; turn++) {
      let took = false;
      for (const stream of order) {
        const row = stream.rows[turn];
        if (row === undefined || dealt.length >= room) continue;
        dealt.push(row);
        this.#lastServed.set(stream.key, ++this.#tick);
        took = true;
      }
      if (!took) break;
    }
    // Streams that are gone (finished batches) are forgotten.
    if (this.#lastServed.size > 4 * streams.length + 64) {
      const live = new Set(streams.map((stream) => stream.key));
      for (const key of this.#lastServed.keys()) if (!live.has(key)) this.#lastServed.delete(key);
    }
    return dealt;
  }
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

interface CapacityLeft {
  memoryMb: number;
  milliCpus: number;
}

/** What an agent's capacity leaves beside the jobs it holds (cores in thousandths). */
function capacityLeft(
  capacity: AgentCapacity,
  held: { memoryMb: number; cpus: number } | undefined,
): CapacityLeft {
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
function withinCapacity(candidates: QueuedRow[], left: CapacityLeft): QueuedRow[] {
  let { memoryMb, milliCpus } = left;
  return candidates.filter((row) => {
    const limits = storedLimits(row.limits);
    if (limits.memoryMb > memoryMb || milli(limits.cpus) > milliCpus) return false;
    memoryMb -= limits.memoryMb;
    milliCpus -= milli(limits.cpus);
    return true;
  });
}
