import { DEFAULT_LIMITS, LIMIT_NAMES, type MaxLimits } from "../../../protocol/index.js";
import type { StoredLeasedJob } from "../interfaces.js";
import {
  type BatchStreamRow,
  type Candidate,
  type CapacityLeft,
  capacityLeft,
  dealtBatchPrograms,
  FairDeal,
  type ItemRow,
  leasedJobs,
  type Program,
  type QueuedRow,
  RoundRobin,
  SINGLES,
  type Stream,
  withinCapacity,
} from "../lease.js";
import { newLeaseIds, storedLimits } from "../rows.js";
import { halfLifeOf, USER_COLUMNS, type UserRow } from "../users.js";
import {
  bigintArray,
  type PgContext,
  type Queryable,
  query,
  textArray,
  writeTransaction,
} from "./database.js";

/**
 * The lease's statements. Rows are taken with FOR UPDATE SKIP LOCKED (as
 * graphile-worker, River and Oban take theirs): a row another coordinator's
 * lease holds is passed over, never waited for and never leased twice.
 */
export const PG_LEASE_SQL = {
  // The agent, locked (two coordinators leasing to one agent take turns, so
  // its slots are counted once), and seen now.
  agent: `UPDATE agents SET last_heartbeat_at = $2 WHERE id = $1
    RETURNING name, state, slots, max_limits, capacity, runtimes`,
  // A statement after the lock: its snapshot sees every lease committed before.
  held: `SELECT COUNT(*) AS held,
      COALESCE(SUM((limits::jsonb ->> 'memoryMb')::float8), 0) AS memory_mb,
      COALESCE(SUM((limits::jsonb ->> 'cpus')::float8), 0) AS cpus
    FROM jobs WHERE agent_id = $1 AND state IN ('leased', 'running')`,
  // The users with queued work, locked in one order: fair share ranks them
  // from their rows alone, and two coordinators' leases take turns on a
  // user, so neither passes their max-running quota on a stale count.
  users: `SELECT ${USER_COLUMNS} FROM users WHERE queued > 0 ORDER BY name FOR UPDATE`,
  // One user's single jobs through jobs_owner_singles_queued. Jobs beyond the
  // agent's largest limits, or in a runtime it does not offer, stay queued
  // for another; a job stored before a limit existed runs with its default.
  singles: `SELECT seq, id, source, files, filename, runtime, input, limits, attempts
    FROM jobs
    WHERE owner = $${LIMIT_NAMES.length + 3} AND state = 'queued' AND batch_id IS NULL
      AND runtime = ANY ($1::text[])
      ${LIMIT_NAMES.map(
        (name, i) =>
          `AND COALESCE((limits::jsonb ->> '${name}')::float8, ${DEFAULT_LIMITS[name]}) <= $${i + 3}`,
      ).join("\n      ")}
    ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
  // One user's batches still running (batches_active_by_owner); their
  // programs are read only for those dealt from.
  activeBatches: `SELECT id, '' AS source, NULL AS files, filename, runtime, limits, max_parallel,
      isolate::int AS isolate
    FROM batches WHERE owner = $1 AND finished_at IS NULL AND cancelled_at IS NULL ORDER BY seq`,
  // Batches with a maxParallel, locked in one order, then their items in flight
  // counted: two leasers of one batch take turns, so it never runs more.
  lockBatches: "SELECT id FROM batches WHERE id = ANY ($1::text[]) ORDER BY seq FOR UPDATE",
  inFlight: `SELECT batch_id, COUNT(*) AS n FROM jobs
    WHERE batch_id = ANY ($1::text[]) AND state IN ('leased', 'running') GROUP BY batch_id`,
  // A batch's queued items, oldest first, through jobs_items_queued.
  items: `SELECT seq, id, input, attempts FROM jobs
    WHERE batch_id = $1 AND state = 'queued' ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED`,
  sources: "SELECT id, source, files FROM batches WHERE id = ANY ($1::text[])",
  // Every dealt job in one statement.
  markLeased: `UPDATE jobs SET state = 'leased', agent_id = $1, node = $2, lease_id = l.lease_id,
      lease_expires_at = $3, leased_at = $4, started_at = NULL, attempts = attempts + 1
    FROM unnest($5::bigint[], $6::text[]) AS l(seq, lease_id)
    WHERE jobs.seq = l.seq`,
  anyQueued: "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'queued') AS queued",
};

interface AgentRow {
  name: string;
  state: string;
  slots: number;
  max_limits: string | null;
  capacity: string | null;
  runtimes: string[] | null;
}

/** Whether any job is queued (one index probe). */
export function prepareHasQueued({ sql }: PgContext) {
  return async (): Promise<boolean> =>
    (await query<{ queued: boolean }>(sql, PG_LEASE_SQL.anyQueued))[0]?.queued === true;
}

/**
 * The SQLite store's lease (coordinator/store/lease.ts) on PostgreSQL: the
 * same deal (fair share between users by FairDeal, round-robin between each
 * user's single jobs and batches, maxParallel per batch, runtimes and limits
 * the agent offers, its capacity), the rows taken with SKIP LOCKED so
 * several coordinators lease side by side.
 */
export function prepareLease({ sql, settings }: PgContext, hasQueued: () => Promise<boolean>) {
  const roundRobin = new RoundRobin();

  const leaseInTransaction = (agentId: string, free: number, now: number) =>
    writeTransaction(sql, async (tx): Promise<StoredLeasedJob[]> => {
      // The agent, its held leases and the users, sent together (one round
      // trip): they run in this order on the transaction's connection, so
      // `held` and `users` still run after the agent's lock is held.
      const [[self], [held], users] = await Promise.all([
        query<AgentRow>(tx, PG_LEASE_SQL.agent, [agentId, now]),
        query<{ held: number; memory_mb: number; cpus: number }>(tx, PG_LEASE_SQL.held, [agentId]),
        query<UserRow>(tx, PG_LEASE_SQL.users),
      ]);
      if (!self) return [];
      // Never more than the agent's free slots as the queue counts them, so an
      // agent that lost track of a lease cannot overcommit its machine.
      const room = Math.min(free, self.slots - (held?.held ?? 0));
      if (self.state !== "ready" || room <= 0) return [];
      const max: MaxLimits = self.max_limits ? JSON.parse(self.max_limits) : {};
      // An agent registered before runtimes runs node jobs only.
      const runtimes = self.runtimes ?? ["node"];
      // A limit the agent names no bound for (an older agent) does not hold a job back.
      const fits: Record<string, number> = {};
      for (const name of LIMIT_NAMES) fits[name] = max[name] ?? Number.MAX_SAFE_INTEGER;
      let left: CapacityLeft | undefined;
      if (self.capacity) {
        // Only jobs that fit in what is left are candidates, so one that can
        // never fit here does not take the place of one that does.
        left = capacityLeft(JSON.parse(self.capacity), {
          memoryMb: held?.memory_mb ?? 0,
          cpus: held?.cpus ?? 0,
        });
        if (left.memoryMb <= 0 || left.milliCpus <= 0) return [];
        fits.memoryMb = Math.min(fits.memoryMb ?? left.memoryMb, left.memoryMb);
        // Half a thousandth over, so 0.1 + 0.2 (0.30000000000000004) fits in 0.3.
        fits.cpus = Math.min(fits.cpus ?? Number.MAX_SAFE_INTEGER, (left.milliCpus + 0.5) / 1000);
      }
      /** One user's queued work this agent can take, as streams: their singles, each batch. */
      const streamsOf = async (owner: string, userRoom: number): Promise<Stream[]> => {
        // Two reads that need nothing of each other: sent together, one round trip.
        const [singles, batches] = await Promise.all([
          query<QueuedRow>(tx, PG_LEASE_SQL.singles, [
            textArray(tx, runtimes),
            userRoom,
            ...LIMIT_NAMES.map((name) => fits[name]),
            owner,
          ]),
          fittingBatches(tx, owner, runtimes, fits, userRoom),
        ]);
        const streams: Stream[] = [{ key: `${SINGLES}${owner}`, rows: singles }];
        streams.push(...(await batchStreams(tx, batches, userRoom, singles.length)));
        return streams;
      };
      const deal = new FairDeal(users, now, halfLifeOf(settings), settings);
      const dealt: Candidate[] = [];
      while (dealt.length < room) {
        const user = deal.next();
        if (!user) break;
        user.streams ??= await streamsOf(user.name, Math.min(room, user.left));
        const taken = roundRobin.take(user.streams);
        if (taken) dealt.push(taken);
        deal.record(user, taken);
      }
      roundRobin.forgetGone();
      const candidates = left ? withinCapacity(dealt, left) : dealt;
      if (candidates.length === 0) return [];
      const leaseIds = newLeaseIds(candidates.length);
      await query(tx, PG_LEASE_SQL.markLeased, [
        agentId,
        self.name,
        now + settings.leaseTtlMs,
        now,
        bigintArray(
          tx,
          candidates.map(({ row }) => row.seq),
        ),
        textArray(tx, leaseIds),
      ]);
      // The programs of the batches dealt from, once each.
      const fromBatches = dealtBatchPrograms(candidates);
      if (fromBatches.length > 0) {
        const programs = new Map(
          (
            await query<{ id: string; source: string; files: string | null }>(
              tx,
              PG_LEASE_SQL.sources,
              [
                textArray(
                  tx,
                  fromBatches.map((batch) => batch.batchId ?? ""),
                ),
              ],
            )
          ).map((row) => [row.id, row]),
        );
        for (const program of fromBatches) {
          const stored = programs.get(program.batchId ?? "");
          program.source = stored?.source ?? "";
          program.files = stored?.files ?? null;
        }
      }
      return leasedJobs(candidates, leaseIds);
    });

  // Nothing queued: answer without a transaction (long-polls ask on every wake-up).
  return async (agentId: string, free: number, now: number): Promise<StoredLeasedJob[]> =>
    (await hasQueued()) ? leaseInTransaction(agentId, free, now) : [];
}

/**
 * The active batches this agent may run (its runtimes, its largest limits,
 * their maxParallel), each with how many of its items this lease may take.
 */
async function fittingBatches(
  tx: Queryable,
  owner: string,
  runtimes: readonly string[],
  fits: Record<string, number>,
  room: number,
): Promise<{ batch: BatchStreamRow; cap: number }[]> {
  const active = (await query<BatchStreamRow>(tx, PG_LEASE_SQL.activeBatches, [owner])).filter(
    (batch) => {
      if (!runtimes.includes(batch.runtime)) return false;
      const limits = storedLimits(batch.limits);
      // A batch's items share its limits: it fits this agent or not, as a whole.
      return !LIMIT_NAMES.some((name) => limits[name] > (fits[name] ?? Number.MAX_SAFE_INTEGER));
    },
  );
  const bounded = active.filter((batch) => batch.max_parallel !== null).map((batch) => batch.id);
  const running = new Map<string, number>();
  if (bounded.length > 0) {
    await query(tx, PG_LEASE_SQL.lockBatches, [textArray(tx, bounded)]);
    for (const row of await query<{ batch_id: string; n: number }>(tx, PG_LEASE_SQL.inFlight, [
      textArray(tx, bounded),
    ])) {
      running.set(row.batch_id, row.n);
    }
  }
  return active.flatMap((batch) => {
    const headroom =
      batch.max_parallel === null ? room : batch.max_parallel - (running.get(batch.id) ?? 0);
    return headroom > 0 ? [{ batch, cap: Math.min(room, headroom) }] : [];
  });
}

/**
 * Each batch's queued items, as many as the round-robin can deal from it:
 * first its share of the deal (room ÷ streams), then up to its cap only when
 * the shares fell short of `room`, as the SQLite store's batchStreams reads
 * them. The reads of all batches go out together (pipelined on the
 * transaction's connection).
 */
async function batchStreams(
  tx: Queryable,
  batches: readonly { batch: BatchStreamRow; cap: number }[],
  room: number,
  singles: number,
): Promise<Stream[]> {
  if (batches.length === 0) return [];
  const items = (batchId: string, limit: number) =>
    query<ItemRow>(tx, PG_LEASE_SQL.items, [batchId, limit]);
  const share = Math.ceil(room / (batches.length + (singles > 0 ? 1 : 0)));
  const read = await Promise.all(
    batches.map(async ({ batch, cap }) => {
      const asked = Math.min(cap, share);
      return { batch, cap, asked, rows: await items(batch.id, asked) };
    }),
  );
  const total =
    Math.min(singles, share) + read.reduce((sum, stream) => sum + stream.rows.length, 0);
  if (total < room) {
    await Promise.all(
      read.map(async (stream) => {
        if (stream.rows.length === stream.asked && stream.asked < stream.cap) {
          stream.rows = await items(stream.batch.id, stream.cap);
        }
      }),
    );
  }
  return read
    .filter((stream) => stream.rows.length > 0)
    .map(({ batch, rows }) => {
      const program: Program = { ...batch, batchId: batch.id, isolate: batch.isolate === 1 };
      return { key: batch.id, rows, program };
    });
}
