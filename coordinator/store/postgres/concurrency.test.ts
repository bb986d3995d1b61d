import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type Outcome } from "../../../protocol/index.js";
import { usePostgresDatabase } from "../../test-support/postgres.js";
import type { Store } from "../interfaces.js";
import { agentSpec, T0 } from "../suite/fixtures.js";
import { openPool } from "./database.js";
import { PG_SCHEMA_VERSION } from "./migrations.js";

/**
 * What only PostgreSQL has: several coordinators (each its own pool) on one
 * database at once, against a real server.
 */
const pg = usePostgresDatabase();
const SETTINGS = { leaseTtlMs: 60_000, maxAttempts: 3 };
const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };
/** Real transactions on a shared 2-core machine: more time than a unit test's 5 s. */
const SLOW = { timeout: 60_000 };

/** Two stores on one schema, as two coordinators on one database. */
async function twoCoordinators(): Promise<[Store, Store]> {
  const schema = await pg.newSchema();
  return [
    await pg.openStore(schema, SETTINGS, { max: 4 }),
    await pg.openStore(schema, SETTINGS, { max: 4 }),
  ];
}

/** Leases with `agentId` on `store` until a lease comes back empty; every leased id. */
async function drain(store: Store, agentId: string, free: number): Promise<string[]> {
  const leased: string[] = [];
  for (;;) {
    const jobs = await store.lease(agentId, free, T0);
    if (jobs.length === 0) return leased;
    leased.push(...jobs.map((job) => job.id));
    // Done at once, so the agent's slots free up and it asks again.
    await store.completeMany(
      agentId,
      jobs.map((job) => ({ leaseId: job.leaseId, outcome: OK })),
      T0,
    );
  }
}

describe("several coordinators on one database", () => {
  it(
    "never leases one job twice when two coordinators lease at once (SKIP LOCKED)",
    SLOW,
    async () => {
      const [one, two] = await twoCoordinators();
      const singles = 150;
      for (let i = 0; i < singles; i++) {
        await one.enqueue({ source: "x", filename: "main.js" }, T0);
      }
      await two.enqueueBatch(
        {
          spec: { source: "x", filename: "main.js", retries: 0, isolate: false },
          inputs: Array.from({ length: 150 }, (_, i) => String(i)),
        },
        DEFAULT_LIMITS,
        T0,
      );
      const agents = await Promise.all(
        [1, 2, 3, 4].map((n) => one.registerAgent(agentSpec(`a${n}`, 8), `h${n}`, T0)),
      );
      // Four agents, two on each coordinator, all leasing at the same time.
      const leased = await Promise.all(
        agents.map((agent, n) => drain(n % 2 === 0 ? one : two, agent.id, 8)),
      );
      const all = leased.flat();
      expect(all).toHaveLength(300);
      expect(new Set(all).size).toBe(300);
      // More than one agent got work: the leases really ran side by side.
      expect(leased.filter((ids) => ids.length > 0).length).toBeGreaterThan(1);
      expect((await two.stats(T0)).jobs).toMatchObject({ queued: 0, succeeded: 300 });
      expect(
        (await one.getBatch((await one.listBatches({ limit: 1 })).batches[0]?.id ?? "")).state,
      ).toBe("succeeded");
    },
  );

  it("never runs more than maxParallel of a batch's items across coordinators", SLOW, async () => {
    const [one, two] = await twoCoordinators();
    const { id } = await one.enqueueBatch(
      {
        spec: { source: "x", filename: "main.js", retries: 0, isolate: false, maxParallel: 3 },
        inputs: Array.from({ length: 20 }, (_, i) => String(i)),
      },
      DEFAULT_LIMITS,
      T0,
    );
    const agents = await Promise.all(
      [1, 2, 3, 4].map((n) => one.registerAgent(agentSpec(`a${n}`, 4), `h${n}`, T0)),
    );
    const leased = await Promise.all(
      agents.map((agent, n) => (n % 2 === 0 ? one : two).lease(agent.id, 4, T0)),
    );
    expect(leased.flat()).toHaveLength(3);
    expect((await two.getBatch(id)).counts.running).toBe(3);
  });

  it("settles a batch whose last items two coordinators complete at once", SLOW, async () => {
    const [one, two] = await twoCoordinators();
    for (let round = 0; round < 5; round++) {
      const { id } = await one.enqueueBatch(
        {
          spec: { source: "x", filename: "main.js", retries: 0, isolate: false },
          inputs: ["1", "2"],
        },
        DEFAULT_LIMITS,
        T0,
      );
      const a = await one.registerAgent(agentSpec("a", 1), `ha${round}`, T0);
      const b = await one.registerAgent(agentSpec("b", 1), `hb${round}`, T0);
      const [first] = await one.lease(a.id, 1, T0);
      const [second] = await two.lease(b.id, 1, T0);
      await Promise.all([
        one.complete(a.id, first?.leaseId ?? "", OK, T0 + 1),
        two.complete(b.id, second?.leaseId ?? "", OK, T0 + 1),
      ]);
      expect(await one.getBatch(id)).toMatchObject({
        state: "succeeded",
        counts: { succeeded: 2 },
      });
    }
  });

  it(
    "takes a result once when a zombie and the new holder of a job complete at once",
    SLOW,
    async () => {
      const schema = await pg.newSchema();
      const settings = { leaseTtlMs: 1_000, maxAttempts: 3 };
      const one = await pg.openStore(schema, settings);
      const two = await pg.openStore(schema, settings);
      const { id } = await one.enqueue({ source: "x", filename: "main.js" }, T0);
      const zombie = await one.registerAgent(agentSpec("zombie"), "hz", T0);
      const fresh = await one.registerAgent(agentSpec("fresh"), "hf", T0);
      const [old] = await one.lease(zombie.id, 1, T0);
      await two.expireLeases(T0 + 1_001);
      const [current] = await two.lease(fresh.id, 1, T0 + 1_002);
      const [late, onTime] = await Promise.allSettled([
        one.complete(zombie.id, old?.leaseId ?? "", { ...OK, result: "zombie" }, T0 + 1_003),
        two.complete(fresh.id, current?.leaseId ?? "", { ...OK, result: "fresh" }, T0 + 1_003),
      ]);
      expect(late).toMatchObject({ status: "rejected", reason: { code: "STALE_LEASE" } });
      expect(onTime.status).toBe("fulfilled");
      expect((await one.getJob(id)).outcome).toMatchObject({ ok: true, result: "fresh" });
    },
  );
  it(
    "queues no more than a user's max-queued when submits on two coordinators race (one-statement enqueue)",
    SLOW,
    async () => {
      const [one, two] = await twoCoordinators();
      await one.addUser({ name: "alice", maxQueued: 3 }, "h-alice", T0);
      const submits = Array.from({ length: 12 }, (_, i) =>
        (i % 2 === 0 ? one : two).enqueue({ source: "x", filename: "main.js" }, T0, "alice").then(
          () => "queued",
          (error: { code?: string }) => error.code ?? "threw",
        ),
      );
      const answers = await Promise.all(submits);
      expect(answers.filter((answer) => answer === "queued")).toHaveLength(3);
      expect(answers.filter((answer) => answer === "QUOTA_EXCEEDED")).toHaveLength(9);
      const alice = (await two.listUsers(T0)).find((user) => user.name === "alice");
      expect(alice?.queued).toBe(3);
      expect((await one.stats(T0)).jobs.queued).toBe(3);
    },
  );
});

describe("schema and pool", () => {
  it(
    "migrates once, under the lock, when several coordinators open a new database at once",
    SLOW,
    async () => {
      const schema = await pg.newSchema();
      const stores = await Promise.all(
        [1, 2, 3].map(() => pg.openStore(schema, SETTINGS, { max: 2 })),
      );
      const sql = pg.connect(schema);
      expect(await sql.unsafe("SELECT version FROM labrun_schema")).toEqual([
        { version: PG_SCHEMA_VERSION },
      ]);
      // Every one of them works on the one schema.
      const job = await stores[0]?.enqueue({ source: "x", filename: "main.js" }, T0);
      expect((await stores[2]?.getJob(job?.id ?? ""))?.state).toBe("queued");
    },
  );

  it(
    "keeps the queue table's own autovacuum settings and partial indexes of the ready set",
    SLOW,
    async () => {
      const schema = await pg.newSchema();
      await pg.openStore(schema);
      const sql = pg.connect(schema);
      const [table] = await sql.unsafe(
        "SELECT reloptions FROM pg_class WHERE oid = 'jobs'::regclass",
      );
      expect(table?.reloptions).toEqual(
        expect.arrayContaining([
          "autovacuum_vacuum_scale_factor=0.01",
          "autovacuum_vacuum_cost_delay=0",
        ]),
      );
      const indexes = await sql.unsafe(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'jobs'",
        [schema],
      );
      const ready = indexes.find((row) => row.indexname === "jobs_singles_queued");
      expect(String(ready?.indexdef)).toMatch(
        /WHERE \(\(state = 'queued'::text\) AND \(batch_id IS NULL\)\)/,
      );
    },
  );

  it(
    "ends a session left idle inside a transaction (idle_in_transaction_session_timeout)",
    SLOW,
    async () => {
      const sql = openPool(pg.url(), { max: 1, idleInTransactionSeconds: 1 });
      pg.onCleanup(() => sql.end({ timeout: 1 }));
      const [setting] = await sql.unsafe("SHOW idle_in_transaction_session_timeout");
      expect(setting?.idle_in_transaction_session_timeout).toBe("1s");
      const stalled = sql.begin(async (tx) => {
        await tx.unsafe("SELECT 1");
        // A stalled coordinator: the transaction stays open and does nothing.
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        await tx.unsafe("SELECT 1");
      });
      await expect(stalled).rejects.toThrow();
    },
  );
});
