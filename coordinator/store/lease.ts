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
  const queuedItems = db.prepare<[string, number], ItemRow>(LEASE_SQL.items);
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
      const batches: { batch: BatchStreamRow; cap: number }[] = [];
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
        if (headroom > 0) batches.push({ batch, cap: Math.min(room, headroom) });
      }
      streams.push(...batchStreams(batches, room, streams[0]?.rows.length ?? 0, queuedItems));
      const dealt = roundRobin.deal(streams, room);
      const candidates = left ? withinCapacity(dealt, left) : dealt;
      const leaseIds = newLeaseIds(candidates.length);
      const limitsOf = new Map<string, JobLimits>();
      return candidates.map(({ row, program }, position) => {
        const leaseId = leaseIds[position] ?? "";
        // A batch's items share one limits text: parsed once per lease.
        let limits = limitsOf.get(program.limits);
        if (!limits) {
          limits = storedLimits(program.limits);
          limitsOf.set(program.limits, limits);
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
            source: program.source,
            filename: program.filename,
            runtime: program.runtime,
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

/**
 * Each batch's queued items, as many as the round-robin can deal from it.
 * With several batches queued, one deal of `room` takes about room ÷ streams
 * from each: every batch is first read for that share only, and read again up
 * to its cap only when the shares fell short of `room` (some stream had
 * fewer). The deal is then the same as if every batch had been read to its
 * cap, without materialising rows that are not dealt (most, with many
 * batches). Items carry no program: their batch's is joined to those dealt.
 */
function batchStreams(
  batches: readonly { batch: BatchStreamRow; cap: number }[],
  room: number,
  singles: number,
  queuedItems: { all(batchId: string, limit: number): ItemRow[] },
): Stream[] {
  if (batches.length === 0) return [];
  const share = Math.ceil(room / (batches.length + (singles > 0 ? 1 : 0)));
  const read = batches.map(({ batch, cap }) => {
    const asked = Math.min(cap, share);
    return { batch, cap, asked, rows: queuedItems.all(batch.id, asked) };
  });
  // What the deal's first `share` turns take; past them, only the streams read in full could give more.
  const total =
    Math.min(singles, share) + read.reduce((sum, stream) => sum + stream.rows.length, 0);
  if (total < room) {
    for (const stream of read) {
      if (stream.rows.length === stream.asked && stream.asked < stream.cap) {
        stream.rows = queuedItems.all(stream.batch.id, stream.cap);
      }
    }
  }
  return read
    .filter((stream) => stream.rows.length > 0)
    .map(({ batch, rows }) => ({ key: batch.id, rows, program: batch }));
}

/** The stream of single jobs, beside one stream per batch. */
export const SINGLES = "";

/** What runs a queued job: its own (a single job) or its batch's (an item). */
export interface Program {
  source: string;
  filename: string;
  runtime: Runtime;
  limits: string;
}

export interface Stream {
  key: string;
  rows: ItemRow[];
  /** The batch's program; absent for the single jobs, whose rows carry their own. */
  program?: Program;
}

/** A queued job dealt to the lease, with the program it runs. */
export interface Candidate {
  row: ItemRow;
  program: Program;
}

export interface BatchStreamRow {
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
export class RoundRobin {
  #tick = 0;
  readonly #lastServed = new Map<string, number>();

  /** Up to `room` rows, taken one per stream per turn, least recently served first. */
  deal(streams: Stream[], room: number): Candidate[] {
    const order = [...streams].sort(
      (a, b) => (this.#lastServed.get(a.key) ?? 0) - (this.#lastServed.get(b.key) ?? 0),
    );
    const dealt: Candidate[] = [];
    for (let turn = 0; dealt.length < room; turn++) {
      let took = false;
      for (const stream of order) {
        const row = stream.rows[turn];
        if (row === undefined || dealt.length >= room) continue;
        dealt.push({ row, program: stream.program ?? (row as QueuedRow) });
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

/** A queued job as its stream reads it: a batch item's row has no program of its own. */
export interface ItemRow {
  seq: number;
  id: string;
  input: string;
  attempts: number;
}

/** A queued single job: its row carries its program. */
export interface QueuedRow extends ItemRow, Program {}

const milli = (cpus: number) => Math.round(cpus * 1000);

export interface CapacityLeft {
  memoryMb: number;
  milliCpus: number;
}

/** What an agent's capacity leaves beside the jobs it holds (cores in thousandths). */
export function capacityLeft(
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
export function withinCapacity(candidates: Candidate[], left: CapacityLeft): Candidate[] {
  let { memoryMb, milliCpus } = left;
  return candidates.filter(({ program }) => {
    const limits = storedLimits(program.limits);
    if (limits.memoryMb > memoryMb || milli(limits.cpus) > milliCpus) return false;
    memoryMb -= limits.memoryMb;
    milliCpus -= milli(limits.cpus);
    return true;
  });
}
