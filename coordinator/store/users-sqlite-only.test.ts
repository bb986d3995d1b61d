// The users' checks only the SQLite store has: the fair-share formula on its
// own, and a property test comparing the users rows with the jobs' states in
// labrun.db itself. Everything users do through the verbs is in the shared
// store suite (suite/users.ts), run on both stores.
import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type NewBatch, type Outcome } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { onCleanup, tempDir } from "../test-support/store-fixtures.js";
import { charged, decayed, fairOrder, usageNow } from "./fairShare.js";
import { openStore, type Store, type StoreSettings } from "./index.js";
import { agentSpec, FAILED, OK, T0, TTL } from "./suite/fixtures.js";

const HOUR = 3_600_000;

function open(settings: Partial<StoreSettings> = {}, dataDir = tempDir()): Store {
  const store = openStore(dataDir, { leaseTtlMs: TTL, maxAttempts: 2, ...settings });
  onCleanup(() => {
    // Closed by the test already, at times.
    return store.close().catch(() => undefined);
  });
  return store;
}

const job = async (store: Store, owner: string, now = T0) =>
  (await store.enqueue({ source: "exports.main = () => 1" }, now, owner)).id;

const batchOf = (count: number): NewBatch => ({
  spec: { source: "exports.main = (n) => n", filename: "main.js", retries: 0, isolate: false },
  inputs: Array.from({ length: count }, (_, index) => JSON.stringify(index)),
});

describe("the fair-share formula", () => {
  it("halves usage every half-life and never grows it backwards in time", async () => {
    expect(decayed(100, T0, T0 + HOUR, HOUR)).toBeCloseTo(50);
    expect(decayed(100, T0, T0 + 2 * HOUR, HOUR)).toBeCloseTo(25);
    expect(decayed(100, T0, T0 - HOUR, HOUR)).toBe(100);
  });

  it("charges a run ended at `at`: the old usage decayed to then, plus the run", async () => {
    expect(charged(100, T0, T0 + HOUR, 10, HOUR)).toBeCloseTo(60);
    // A run that ended before the last charge is decayed to it instead.
    expect(charged(100, T0 + HOUR, T0, 10, HOUR)).toBeCloseTo(105);
  });

  it("counts running jobs in full for the time they have run", async () => {
    const row = { weight: 2, running: 2, running_since: 2 * T0, usage: 0, usage_at: T0 };
    expect(usageNow(row, T0 + 5_000, HOUR)).toBeCloseTo(10);
  });

  it("orders by usage ÷ weight, then running ÷ weight, then name", async () => {
    const user = (name: string, priority: number, running: number, weight = 1) => ({
      name,
      priority,
      running,
      weight,
    });
    expect(fairOrder(user("a", 1, 0), user("b", 2, 0))).toBeLessThan(0);
    expect(fairOrder(user("a", 1, 3), user("b", 1, 1))).toBeGreaterThan(0);
    expect(fairOrder(user("a", 1, 2, 4), user("b", 1, 1))).toBeLessThan(0);
    expect(fairOrder(user("a", 1, 1), user("b", 1, 1))).toBeLessThan(0);
  });
});

describe("the counts the lease reads", () => {
  it("always equal the jobs' own states, whatever sequence of verbs ran", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(9), fc.nat(1_000)), { minLength: 1, maxLength: 60 }),
        async (steps) => {
          const dataDir = tempDir();
          const store = open({}, dataDir);
          const db = new Database(join(dataDir, "labrun.db"), { readonly: true });
          onCleanup(() => db.close());
          await store.addUser({ name: "alice" }, "h-a", T0);
          const agent = await store.registerAgent(agentSpec("n", 3), "h", T0);
          const leases: string[] = [];
          const batches: string[] = [];
          let now = T0;
          const owners = ["alice", "default"];
          const sandboxFailed: Outcome = {
            ok: false,
            error: { code: "SANDBOX_ERROR", message: "x" },
            logs: "",
            stats: { durationMs: 1 },
          };
          for (const [verb, pick] of steps) {
            now += 100;
            const owner = owners[pick % 2] ?? "default";
            try {
              if (verb === 0) await job(store, owner, now);
              else if (verb === 1) {
                batches.push((await store.enqueueBatch(batchOf(3), DEFAULT_LIMITS, now, owner)).id);
              } else if (verb === 2) {
                leases.push(
                  ...(await store.lease(agent.id, 1 + (pick % 3), now)).map((l) => l.leaseId),
                );
              } else if (verb === 3) await store.heartbeat(agent.id, leases, now);
              else if (verb === 4 && leases.length > 0) {
                const leaseId = leases.splice(pick % leases.length, 1)[0] ?? "";
                const outcome = [OK, FAILED, sandboxFailed][pick % 3] ?? OK;
                await store.completeMany(agent.id, [{ leaseId, outcome }], now);
              } else if (verb === 5) {
                const queued = (await store.listJobs({ limit: 5 })).jobs[pick % 5];
                if (queued) await store.cancel(queued.id, now);
              } else if (verb === 6 && batches.length > 0) {
                await store.cancelBatch(batches[pick % batches.length] ?? "", now);
              } else if (verb === 7 && batches.length > 0) {
                await store.retryBatch(batches[pick % batches.length] ?? "");
              } else if (verb === 8) {
                await store.expireLeases(now + TTL + 1);
                now += TTL + 1;
              } else if (verb === 9) await store.pruneFinished(now);
            } catch (error) {
              if (!(error instanceof ApiError)) throw error;
            }
            const counted = db
              .prepare(
                `SELECT owner, SUM(state = 'queued') AS queued,
                   SUM(state IN ('leased', 'running')) AS running,
                   SUM(CASE WHEN state IN ('leased', 'running') THEN leased_at ELSE 0 END) AS since
                 FROM jobs GROUP BY owner`,
              )
              .all() as { owner: string; queued: number; running: number; since: number }[];
            const kept = db
              .prepare("SELECT name, queued, running, running_since AS since FROM users")
              .all() as { name: string; queued: number; running: number; since: number }[];
            for (const user of kept) {
              const actual = counted.find((row) => row.owner === user.name);
              expect([user.queued, user.running, user.since]).toEqual([
                actual?.queued ?? 0,
                actual?.running ?? 0,
                actual?.since ?? 0,
              ]);
            }
          }
          await store.close();
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});
