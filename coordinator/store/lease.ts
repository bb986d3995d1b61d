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
import { fairOrder, priorityOf } from "./fairShare.js";
import type { StoredLeasedJob } from "./interfaces.js";
import { leasedProgram, newLeaseIds, storedLimits } from "./rows.js";
import { halfLifeOf, quotasOf, type UserRow } from "./users.js";

/** The lease's statements that must use their index, exported for a test of their plans. */
export const LEASE_SQL = {
  // Single jobs through jobs_singles_queued, named: the planner would take
  // jobs_by_state and walk past every queued item of a big batch.
  // Jobs beyond the agent's largest limits stay queued for a bigger machine.
  // A job stored before a limit existed runs with its default.
  // Jobs in a runtime the agent does not offer wait for one that does.
  // One user's at a time (fair share picks whose), through jobs_owner_singles_queued.
  // The program from job_programs (migration 13), read for the rows taken only;
  // its files as their bytes (a BLOB), which the lease answer writes as they
  // are (storedJson.ts) instead of decoding megabytes into a string first.
  singles: `SELECT seq, id,
       COALESCE((SELECT p.source FROM job_programs p WHERE p.seq = jobs.seq), source) AS source,
       CAST(COALESCE((SELECT p.files FROM job_programs p WHERE p.seq = jobs.seq), files) AS BLOB)
         AS files,
       filename, runtime, input, limits, attempts
     FROM jobs INDEXED BY jobs_owner_singles_queued
     WHERE owner = @owner AND state = 'queued' AND batch_id IS NULL
       AND runtime IN (SELECT value FROM json_each(@runtimes))
       ${LIMIT_NAMES.map(
         (name) =>
           `AND COALESCE(json_extract(limits, '$.${name}'), ${DEFAULT_LIMITS[name]}) <= @${name}`,
       ).join("\n       ")}
     ORDER BY seq LIMIT @room`,
  // A batch's queued items, oldest first, from jobs_by_batch_state alone.
  items: `SELECT seq, id, input, attempts FROM jobs INDEXED BY jobs_by_batch_state
     WHERE batch_id = ? AND state = 'queued' ORDER BY seq LIMIT ?`,
  // The dealt jobs, by seq (the rowid), from a JSON array of [seq, leaseId].
  mark: `UPDATE jobs SET state = 'leased', agent_id = @agentId, node = @node,
       lease_id = dealt.value ->> 1, lease_expires_at = @deadline, leased_at = @now,
       started_at = NULL, attempts = attempts + 1
     FROM json_each(@dealt) AS dealt WHERE jobs.seq = dealt.value ->> 0`,
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
  // A user's batches still running, without their programs (a megabyte
  // each, maybe): those are read for the batches dealt from only.
  const activeBatches = db.prepare<[string], BatchStreamRow>(
    `SELECT id, '' AS source, NULL AS files, filename, runtime, limits, max_parallel,
       isolate FROM batches
       INDEXED BY batches_active_by_owner
     WHERE owner = ? AND finished_at IS NULL AND cancelled_at IS NULL ORDER BY seq`,
  );
  const batchProgram = db.prepare<[string], { source: string; files: Buffer | null }>(
    "SELECT source, CAST(files AS BLOB) AS files FROM batches WHERE id = ?",
  );
  // The users with queued work: a row each, so a lease reads no job to rank them.
  const usersWithWork = db.prepare<[], UserRow>(
    `SELECT name, created_at, weight, max_running, max_queued, queued, running, running_since,
       usage, usage_at FROM users WHERE queued > 0`,
  );
  const batchInFlight = db
    .prepare<[string], number>(
      "SELECT COUNT(*) FROM jobs WHERE batch_id = ? AND state IN ('leased', 'running')",
    )
    .pluck();
  const queuedItems = db.prepare<[string, number], ItemRow>(LEASE_SQL.items);
  // The whole deal in one statement, [seq, leaseId] pairs as JSON: one
  // statement (and one statement journal for the users' triggers) per lease
  // instead of one per job.
  const markLeased = db.prepare(LEASE_SQL.mark);
  const seen = db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?");
  const roundRobin = new RoundRobin();

  const leaseInTransaction = writeTransaction(
    db,
    function lease(agentId: string, free: number, now: number): StoredLeasedJob[] {
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
      /** One user's queued work this agent can take, as streams: their singles, each batch. */
      const streamsOf = (owner: string, userRoom: number): Stream[] => {
        const streams: Stream[] = [
          { key: `${SINGLES}${owner}`, rows: oldestQueued.all({ ...fits, room: userRoom, owner }) },
        ];
        const batches: { batch: BatchStreamRow; cap: number }[] = [];
        for (const batch of activeBatches.all(owner)) {
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
              ? userRoom
              : batch.max_parallel - (batchInFlight.get(batch.id) ?? 0);
          if (headroom > 0) batches.push({ batch, cap: Math.min(userRoom, headroom) });
        }
        streams.push(...batchStreams(batches, userRoom, streams[0]?.rows.length ?? 0, queuedItems));
        return streams;
      };
      const dealt = dealFairly(
        usersWithWork.all(),
        room,
        now,
        halfLifeOf(settings),
        settings,
        streamsOf,
        roundRobin,
      );
      const candidates = left ? withinCapacity(dealt, left) : dealt;
      if (candidates.length === 0) return [];
      const leaseIds = newLeaseIds(candidates.length);
      markLeased.run({
        dealt: JSON.stringify(
          candidates.map((candidate, position) => [candidate.row.seq, leaseIds[position]]),
        ),
        agentId,
        node: self.name,
        deadline: now + settings.leaseTtlMs,
        now,
      });
      for (const program of dealtBatchPrograms(candidates)) {
        const stored = batchProgram.get(program.batchId ?? "");
        program.source = stored?.source ?? "";
        program.files = stored?.files ?? null;
      }
      return leasedJobs(candidates, leaseIds);
    },
  );
  // Nothing queued: answer without a write transaction. Long-polls ask again
  // on every wake-up, and an empty BEGIN IMMEDIATE … COMMIT per ask was most of
  // the coordinator's work at moderate load. (Heartbeats keep last-seen fresh.)
  return (agentId: string, free: number, now: number): StoredLeasedJob[] =>
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
    .map(({ batch, rows }) => ({
      key: batch.id,
      rows,
      program: { ...batch, batchId: batch.id, isolate: batch.isolate === 1 },
    }));
}

/**
 * The programs of the batches `candidates` were dealt from, once each:
 * a lease reads the activeBatches rows without their programs and fills
 * in these alone, after the deal.
 */
export function dealtBatchPrograms(candidates: readonly Candidate[]): Program[] {
  return [
    ...new Set(
      candidates.flatMap(({ program }) => (program.batchId === undefined ? [] : [program])),
    ),
  ];
}

/** The key prefix of a user's stream of single jobs, beside one stream per batch. */
export const SINGLES = "singles:";

/** What runs a queued job: its own (a single job) or its batch's (an item). */
export interface Program {
  source: string;
  /** JSON [{path, content}] (its bytes, as SQLite hands a BLOB); NULL when source is the program. */
  files: string | Buffer | null;
  filename: string;
  runtime: Runtime;
  limits: string;
  /** A batch's program: its id, and whether it asked for one container per item. */
  batchId?: string;
  isolate?: boolean;
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

/** A leased job's spec without its input: what all the items of one batch share. */
type SpecBase = Omit<StoredLeasedJob["spec"], "input">;

/** The spec of `program`'s jobs, but for the input. */
function specBase(program: Program, limits: JobLimits): SpecBase {
  return {
    ...leasedProgram(program),
    filename: program.filename,
    runtime: program.runtime,
    limits,
    // Batch items only: a single job's spec stays as it was.
    ...(program.batchId === undefined
      ? {}
      : { batchId: program.batchId, isolate: program.isolate === true }),
  };
}

const leasedOf = (row: ItemRow, leaseId: string, base: SpecBase): StoredLeasedJob => ({
  id: row.id,
  leaseId,
  attempt: row.attempts + 1,
  spec: { ...base, input: JSON.parse(row.input) as LeasedJob["spec"]["input"] },
});

/**
 * What the agent is handed for the dealt jobs, `leaseIds` in the same order.
 * Each program's part of the spec (its files and limits parsed) is built
 * once, shared by its jobs: a batch's items differ only in their input.
 */
export function leasedJobs(candidates: readonly Candidate[], leaseIds: readonly string[]) {
  const bases = new Map<Program, SpecBase>();
  return candidates.map(({ row, program }, position) => {
    let base = bases.get(program);
    if (!base) {
      base = specBase(program, storedLimits(program.limits));
      bases.set(program, base);
    }
    return leasedOf(row, leaseIds[position] ?? "", base);
  });
}

export interface BatchStreamRow {
  id: string;
  source: string;
  files: string | Buffer | null;
  filename: string;
  runtime: Runtime;
  limits: string;
  max_parallel: number | null;
  isolate: number;
}

/** A user in one lease's deal: their rank, and their streams once read. */
export interface Contender {
  name: string;
  priority: number;
  running: number;
  weight: number;
  /** How many more of theirs may run (max-running quota), or Infinity. */
  left: number;
  streams?: Stream[];
}

/**
 * Deals up to `room` queued jobs between the users with queued work, one at
 * a time by fair share (fairShare.ts): the next job is the lowest-priority
 * user's, then their oldest work round-robin across their streams. A job
 * dealt counts as one more running for the next pick, so users of equal
 * usage alternate. A user at their max-running quota gets none. Reads only
 * the streams of users dealt to, each at most their share of `room`.
 */
function dealFairly(
  users: readonly UserRow[],
  room: number,
  now: number,
  halfLifeMs: number,
  settings: StoreContext["settings"],
  streamsOf: (owner: string, userRoom: number) => Stream[],
  roundRobin: RoundRobin,
): Candidate[] {
  const deal = new FairDeal(users, now, halfLifeMs, settings);
  const dealt: Candidate[] = [];
  while (dealt.length < room) {
    const user = deal.next();
    if (!user) break;
    user.streams ??= streamsOf(user.name, Math.min(room, user.left));
    const taken = roundRobin.take(user.streams);
    if (taken) dealt.push(taken);
    deal.record(user, taken);
  }
  roundRobin.forgetGone();
  return dealt;
}

/**
 * One lease's deal between users by fair share, step by step, so both
 * stores deal alike (the PostgreSQL lease reads a user's streams
 * asynchronously between the steps): `next` names whose job goes next,
 * `record` what their streams gave.
 */
export class FairDeal {
  readonly #contenders: Contender[] = [];

  constructor(
    users: readonly UserRow[],
    now: number,
    halfLifeMs: number,
    settings: StoreContext["settings"],
  ) {
    for (const user of users) {
      const { maxRunning } = quotasOf(user, settings);
      const left = maxRunning === undefined ? Number.POSITIVE_INFINITY : maxRunning - user.running;
      if (left <= 0) continue;
      this.#contenders.push({
        name: user.name,
        priority: priorityOf(user, now, halfLifeMs),
        running: user.running,
        weight: user.weight,
        left,
      });
    }
  }

  /** The user the next job goes to (lowest fair order), or undefined when none is left. */
  next(): Contender | undefined {
    let best: Contender | undefined;
    for (const contender of this.#contenders) {
      if (!best || fairOrder(contender, best) < 0) best = contender;
    }
    return best;
  }

  /** A job taken from `user`'s streams counts as one more running; none taken, or their quota reached, they leave the deal. */
  record(user: Contender, taken: Candidate | undefined): void {
    if (taken) {
      user.running += 1;
      user.left -= 1;
    }
    if (!taken || user.left <= 0) this.#contenders.splice(this.#contenders.indexOf(user), 1);
  }
}

/**
 * Round-robin between one user's streams of queued work (their single jobs,
 * and each batch): the stream served longest ago goes first. So a single
 * job queued behind a 10,000-item batch of its user takes their next turn.
 * The turns live in memory: after a restart every stream starts equal.
 */
export class RoundRobin {
  #tick = 0;
  readonly #lastServed = new Map<string, number>();
  readonly #seen = new Set<string>();
  #deals = 0;

  /** The next row of the least recently served stream that has one (taken from it). */
  take(streams: Stream[]): Candidate | undefined {
    let pick: Stream | undefined;
    for (const stream of streams) {
      this.#seen.add(stream.key);
      if (stream.rows.length === 0) continue;
      if (!pick || this.#served(stream) < this.#served(pick)) pick = stream;
    }
    const row = pick?.rows.shift();
    if (!pick || !row) return undefined;
    this.#lastServed.set(pick.key, ++this.#tick);
    return { row, program: pick.program ?? (row as QueuedRow) };
  }

  #served = (stream: Stream) => this.#lastServed.get(stream.key) ?? 0;

  /** Every 1,024 deals, streams not seen in them (finished batches) are forgotten. */
  forgetGone(): void {
    if (++this.#deals < 1024) return;
    for (const key of this.#lastServed.keys()) {
      if (!this.#seen.has(key)) this.#lastServed.delete(key);
    }
    this.#seen.clear();
    this.#deals = 0;
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
