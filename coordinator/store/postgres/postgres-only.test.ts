import { describe, expect, it, vi } from "vitest";
import { DEFAULT_LIMITS, LIMIT_NAMES, type NewBatch } from "../../../protocol/index.js";
import { usePostgresDatabase } from "../../test-support/postgres.js";
import { unhandledDuring } from "../../test-support/unhandled.js";
import { charged } from "../fairShare.js";
import type { Store } from "../interfaces.js";
import { agentSpec, OK, T0, TTL } from "../suite/fixtures.js";
import { PG_BATCH_FAILURES_SQL } from "./batchFailures.js";
import { PG_BATCH_ITEM_ENDS_SQL } from "./batchItemEnds.js";
import { query, type Sql, writeTransaction } from "./database.js";
import { PG_LEASE_SQL } from "./lease.js";
import { PG_SCHEMA_VERSION } from "./migrations.js";
import { PG_STATS_SQL } from "./stats.js";

/**
 * What only the PostgreSQL store has (the shared suite, store.pg.test.ts,
 * checks every verb through the verbs): its schema version, rows written by
 * an older labrun, and the query plans of the hot and the big reads.
 */
const pg = usePostgresDatabase();
// Real transactions on a shared 2-core machine: more time than a unit test's 5 s.
vi.setConfig({ testTimeout: 30_000 });

const open = (schema?: string) => pg.openStore(schema, { leaseTtlMs: TTL, maxAttempts: 2 });

const submit = (store: Store, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1", filename: "main.js" }, now);

const batchOf = (count: number): NewBatch => ({
  spec: { source: "exports.main = (n) => n", filename: "main.js", retries: 0, isolate: false },
  inputs: Array.from({ length: count }, (_, index) => JSON.stringify(index)),
});

/**
 * `EXPLAIN text` in `schema`, its lines joined. With sequential scans (and
 * bitmap scans, with `noBitmap`) priced out, the plan shows which index a
 * statement can use, even on a table small enough to read whole.
 */
function planner(schema: string, { noBitmap = false } = {}) {
  const sql = pg.connect(schema);
  return (text: string, params: unknown[] = []) =>
    sql.begin(async (tx) => {
      await tx.unsafe("SET LOCAL enable_seqscan = off");
      if (noBitmap) await tx.unsafe("SET LOCAL enable_bitmapscan = off");
      const rows = await tx.unsafe(`EXPLAIN ${text}`, params as never[]);
      return rows.map((row) => String(row["QUERY PLAN"])).join("; ");
    });
}

describe("the database", () => {
  it("keeps jobs across closing and reopening, at the current schema", async () => {
    const schema = await pg.newSchema();
    const first = await open(schema);
    const { id } = await submit(first);
    await first.close();
    const second = await open(schema);
    expect((await second.getJob(id)).state).toBe("queued");
    await second.close();
    const [row] = await pg.connect(schema).unsafe("SELECT version FROM labrun_schema");
    expect(row?.version).toBe(PG_SCHEMA_VERSION);
  });

  it("refuses a database from a newer labrun", async () => {
    const schema = await pg.newSchema();
    await (await open(schema)).close();
    await pg
      .connect(schema)
      .unsafe("UPDATE labrun_schema SET version = $1", [PG_SCHEMA_VERSION + 1]);
    await expect(open(schema)).rejects.toThrow(/newer than this labrun knows/);
  });

  it("runs a job stored before the newer limits existed with their defaults", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    const { id } = await submit(store);
    const old = { timeoutMs: 5000, memoryMb: 128, cpus: 1 };
    await pg
      .connect(schema)
      .unsafe("UPDATE jobs SET limits = $1 WHERE id = $2", [JSON.stringify(old), id]);
    expect((await store.getJob(id)).limits).toEqual({ ...DEFAULT_LIMITS, ...old });
    const agent = await store.registerAgent(
      { ...agentSpec(), maxLimits: { pids: DEFAULT_LIMITS.pids, tmpfsMb: 64 } },
      "hash",
      T0,
    );
    const [leased] = await store.lease(agent.id, 1, T0);
    expect(leased?.spec.limits).toEqual({ ...DEFAULT_LIMITS, ...old });
  });
});

describe("pipelined statements", () => {
  // A verb sends several statements before it awaits the first (one round
  // trip). When that first one fails, it throws before awaiting the others,
  // which then fail too ("transaction aborted", or the connection's reset
  // when the server restarts): their rejections must not be unhandled,
  // which kills the coordinator (it did in a CI run of pg-restart.test.ts).
  it("leaves no unhandled rejection when an earlier statement of the pipeline fails", async () => {
    const sql = pg.connect(await pg.newSchema()) as unknown as Sql;
    const unhandled = await unhandledDuring(async () => {
      const failing = writeTransaction(sql, async (tx) => {
        const first = query(tx, "SELECT 1 / 0");
        const second = query(tx, "SELECT 1");
        await first;
        return second;
      });
      await expect(failing).rejects.toMatchObject({ code: "22012" });
    });
    expect(unhandled).toEqual([]);
  });

  it("leaves none when a result's batch check fails with its read-back sent behind it", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    await store.enqueueBatch(batchOf(1), DEFAULT_LIMITS, T0);
    const agent = await store.registerAgent(agentSpec(), "h", T0);
    const [item] = await store.lease(agent.id, 1, T0);
    if (!item) throw new Error("nothing leased");
    const [holder, watcher] = [pg.connect(schema), pg.connect(schema)];
    const unhandled = await unhandledDuring(async () => {
      // The batch's row held: the result's settle check waits for it, with
      // the job's read-back sent behind it; then the check is cancelled.
      await holder.begin(async (tx) => {
        await tx.unsafe("SELECT 1 FROM batches FOR UPDATE");
        const completing = store.complete(agent.id, item.leaseId, OK, T0 + 1);
        completing.catch(() => {});
        await vi.waitFor(
          async () => {
            const [cut] = await watcher.unsafe(
              `SELECT pg_cancel_backend(pid) AS done FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock'`,
            );
            if (!cut?.done) throw new Error("the result's batch check is not waiting yet");
          },
          { timeout: 10_000, interval: 20 },
        );
        await expect(completing).rejects.toMatchObject({ code: "57014" });
      });
    });
    expect(unhandled).toEqual([]);
    await store.close();
  });
});

describe("query plans", () => {
  it("finds a queued single job through its own index, never by scanning a batch's items", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    await store.enqueueBatch(batchOf(10), DEFAULT_LIMITS, T0);
    const plan = planner(schema);
    const fits = [["node"], 4, ...LIMIT_NAMES.map((name) => DEFAULT_LIMITS[name]), "default"];
    const singles = await plan(PG_LEASE_SQL.singles, fits);
    // An index of queued single jobs (one user's, or everyone's): in seq order, no batch's items.
    expect(singles).toMatch(
      /Index Scan using jobs_(owner_singles_queued|owner_singles|singles_queued|singles_by_state)/,
    );
    expect(singles).not.toMatch(/Sort/);
    const items = await plan(PG_LEASE_SQL.items, ["b", 4]);
    expect(items).toMatch(/Index Scan using jobs_items_queued/);
    expect(items).not.toMatch(/Sort/);
  });

  it("answers stats from indexes, never reading job rows (programs can be 1 MiB each)", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    // Rows of both kinds, so the planner weighs real indexes rather than an empty table.
    await store.enqueueBatch(batchOf(300), DEFAULT_LIMITS, T0);
    for (let i = 0; i < 30; i++) await submit(store);
    // An index-only scan needs the visibility map that (auto)vacuum keeps.
    await pg.connect(schema).unsafe("VACUUM ANALYZE jobs");
    const plan = planner(schema, { noBitmap: true });
    expect(await plan(PG_STATS_SQL.jobsByState)).toMatch(/Index Only Scan using jobs_by_state/);
    expect(await plan(PG_STATS_SQL.itemsByState)).toMatch(
      /Index Only Scan using jobs_by_batch_state/,
    );
    expect(await plan(PG_STATS_SQL.finishedSince, [0, 0])).toMatch(
      /Index Only Scan using jobs_by_finished/,
    );
  });

  it("reads the batch page's item ends and failed items along the batch's indexes: no sort", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    const { id } = await store.enqueueBatch(batchOf(300), DEFAULT_LIMITS, T0);
    // Other batches ending at the same times, as on a busy lab: read by their
    // finish times alone, the page would walk past all of theirs. (With one
    // other batch the two plans cost about the same and the planner's pick
    // varied from run to run.)
    for (let other = 0; other < 3; other++) {
      await store.enqueueBatch(batchOf(300), DEFAULT_LIMITS, T0);
    }
    // Ended items, a third of them failed, as on a real batch page (written
    // directly: the plan is the point, not how the items got there).
    const sql = pg.connect(schema);
    await sql.unsafe(
      `UPDATE jobs SET finished_at = $1::bigint + item_index,
         state = CASE WHEN item_index % 3 = 0 THEN 'failed' ELSE 'succeeded' END
       WHERE item_index < 200`,
      [T0],
    );
    // An index-only scan needs the visibility map that (auto)vacuum keeps.
    await sql.unsafe("VACUUM ANALYZE jobs");
    const plan = planner(schema, { noBitmap: true });
    const ends = await plan(PG_BATCH_ITEM_ENDS_SQL, [id, T0 + 1_000, T0 + 10, 10, 500]);
    expect(ends).toMatch(/Index Scan using jobs_by_batch_finished/);
    expect(ends).not.toMatch(/Sort/);
    const failed = await plan(PG_BATCH_FAILURES_SQL.failed, [id, 11]);
    expect(failed).toMatch(/Index Scan using jobs_failed_items/);
    expect(failed).not.toMatch(/Sort/);
    expect(await plan(PG_BATCH_FAILURES_SQL.finishedSince, [id, T0])).toMatch(
      /Index Only Scan using jobs_by_batch_finished/,
    );
  });
});

describe("users' counts and usage in the schema", () => {
  it("charges with labrun_charged, the same numbers as fairShare.ts's charged()", async () => {
    const schema = await pg.newSchema();
    await (await open(schema)).close();
    const sql = pg.connect(schema);
    const HOUR = 3_600_000;
    const cases: [number, number, number, number][] = [
      [0, T0, T0 + 5_000, 5],
      [100, T0, T0 + HOUR, 10],
      [100, T0 + HOUR, T0, 10],
      [42.5, T0, T0, 0],
      [7, T0, T0 + 3 * HOUR, -1],
    ];
    for (const [usage, usageAt, at, seconds] of cases) {
      const [row] = await sql.unsafe<{ v: number }[]>(
        "SELECT labrun_charged($1::float8, $2::bigint, $3::bigint, $4::float8, $5::float8) AS v",
        [usage, usageAt, at, seconds, HOUR],
      );
      expect(row?.v).toBeCloseTo(charged(usage, usageAt, at, seconds, HOUR), 9);
    }
  });

  it("keeps each user's queued, running and running_since equal to their jobs' states", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    const sql = pg.connect(schema);
    await store.addUser({ name: "alice" }, "h-a", T0);
    const agent = await store.registerAgent(agentSpec("n", 3), "h", T0);
    const check = async () => {
      const kept = await sql.unsafe<
        { name: string; queued: number; running: number; since: string }[]
      >("SELECT name, queued, running, running_since::text AS since FROM users ORDER BY name");
      const counted = await sql.unsafe<
        { owner: string; queued: number; running: number; since: string }[]
      >(
        `SELECT owner, COUNT(*) FILTER (WHERE state = 'queued')::int AS queued,
           COUNT(*) FILTER (WHERE state IN ('leased', 'running'))::int AS running,
           COALESCE(SUM(leased_at) FILTER (WHERE state IN ('leased', 'running')), 0)::text AS since
         FROM jobs GROUP BY owner`,
      );
      for (const user of kept) {
        const actual = counted.find((row) => row.owner === user.name);
        expect([user.name, user.queued, user.running, user.since]).toEqual([
          user.name,
          actual?.queued ?? 0,
          actual?.running ?? 0,
          actual?.since ?? "0",
        ]);
      }
    };
    for (const owner of ["alice", "default", "alice"]) {
      await store.enqueue({ source: "x" }, T0, owner);
      await store.enqueueBatch(batchOf(2), DEFAULT_LIMITS, T0, owner);
    }
    await check();
    const leases = await store.lease(agent.id, 3, T0 + 10);
    await check();
    await store.complete(agent.id, leases[0]?.leaseId ?? "", OK, T0 + 20);
    await store.cancel(leases[1]?.id ?? "", T0 + 30);
    await check();
    await store.expireLeases(T0 + 10 + TTL + 1);
    await check();
    await store.removeUser("alice", T0 + 2_000);
    await check();
    await store.pruneFinished(T0 + 10_000);
    await check();
    expect(
      (await store.listUsers(T0 + 2_000)).find((u) => u.name === "default")?.usage,
    ).toBeGreaterThan(0);
  });
});
