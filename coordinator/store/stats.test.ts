import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ClusterStats, DEFAULT_LIMITS, type Outcome } from "../../protocol/index.js";
import { openDatabase } from "./database.js";
import { openStore, type Store } from "./index.js";
import { STATS_SQL } from "./stats.js";

const T0 = 1_700_000_000_000;
const TTL = 1_000;
const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function open(): { store: Store; dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-stats-"));
  const store = openStore(dataDir, { leaseTtlMs: TTL, maxAttempts: 1 });
  cleanups.push(() => {
    store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { store, dataDir };
}

const submit = (store: Store, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1", filename: "main.js" }, now);
const agent = (store: Store, name: string, now = T0) =>
  store.registerAgent(
    { name, hostname: "h", slots: 8, version: "v", labels: {} },
    `hash-${name}`,
    now,
  );

describe("stats", () => {
  it("counts nothing in an empty store, in the protocol's shape", () => {
    const { store } = open();
    const stats = ClusterStats.parse(store.stats(T0));
    expect(stats).toEqual({
      at: new Date(T0).toISOString(),
      jobs: { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
      finished: { lastMinute: 0, lastHour: 0 },
      nodes: { ready: 0, draining: 0, lost: 0 },
      batches: { active: 0, succeeded: 0, failed: 0, cancelled: 0 },
      batchItems: { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
    });
  });

  it("counts batches and their items by state", () => {
    const { store } = open();
    const node = agent(store, "n");
    const batch = store.enqueueBatch(
      {
        spec: { source: "x", filename: "main.js", retries: 0, isolate: false },
        inputs: ["1", "2", "3"],
      },
      DEFAULT_LIMITS,
      T0,
    );
    const [first] = store.lease(node.id, 1, T0);
    store.complete(node.id, first?.leaseId ?? "", OK, T0);
    expect(store.stats(T0)).toMatchObject({
      batches: { active: 1, succeeded: 0 },
      batchItems: { queued: 2, succeeded: 1 },
      jobs: { queued: 2, succeeded: 1 },
    });
    store.cancelBatch(batch.id, T0);
    expect(store.stats(T0)).toMatchObject({
      batches: { active: 0, cancelled: 1 },
      batchItems: { queued: 0, succeeded: 1, cancelled: 2 },
    });
  });

  it("counts jobs by state", () => {
    const { store } = open();
    const node = agent(store, "n");
    for (let i = 0; i < 6; i++) submit(store);
    const [a, b, c, d] = store.lease(node.id, 4, T0);
    if (!a || !b || !c || !d) throw new Error("expected four leases");
    store.heartbeat(node.id, [b.leaseId], T0); // b: running
    store.complete(node.id, c.leaseId, OK, T0);
    store.complete(
      node.id,
      d.leaseId,
      { ...OK, ok: false, error: { code: "TIMEOUT", message: "t" } },
      T0,
    );
    store.cancel(a.id, T0);
    expect(store.stats(T0).jobs).toEqual({
      queued: 2,
      leased: 0,
      running: 1,
      succeeded: 1,
      failed: 1,
      cancelled: 1,
    });
  });

  it("counts jobs finished in the trailing minute and hour, at their edges", () => {
    const { store } = open();
    const node = agent(store, "n");
    // Finished 1 ms before T0, at T0, T0 + 30 s, T0 + 59 min (cancels finish too)…
    for (const offset of [-1, 0, 30_000, 59 * 60_000]) store.cancel(submit(store).id, T0 + offset);
    submit(store); // still queued: not finished
    const [leased] = store.lease(node.id, 1, T0);
    if (!leased) throw new Error("expected a lease");
    const now = T0 + 60 * 60_000;
    // … and one at `now`, an hour after T0.
    store.complete(node.id, leased.leaseId, OK, now);

    // Both windows include their start: the hour reaches back to T0, the minute to T0 + 59 min.
    expect(store.stats(now).finished).toEqual({ lastMinute: 2, lastHour: 4 });
    expect(store.stats(now + 1).finished).toEqual({ lastMinute: 1, lastHour: 3 });
  });

  it("counts nodes by state as listNodes shows them: silent past the TTL is lost", () => {
    const { store } = open();
    const a = agent(store, "a");
    const b = agent(store, "b");
    agent(store, "c");
    store.setAgentState(b.id, "draining", T0);
    store.heartbeat(a.id, [], T0 + TTL);
    const now = T0 + TTL + 1;
    expect(store.stats(now).nodes).toEqual({ ready: 1, draining: 0, lost: 2 });
    const listed = store
      .listNodes(now)
      .map((node) => node.state)
      .sort();
    expect(listed).toEqual(["lost", "lost", "ready"]);
    expect(store.stats(T0).nodes).toEqual({ ready: 2, draining: 1, lost: 0 });
  });

  it("answers from indexes, never reading job rows (programs can be 1 MiB each)", () => {
    const { dataDir } = open();
    const db = openDatabase(dataDir);
    cleanups.push(() => db.close());
    const plan = (sql: string) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all({ minuteAgo: 0, hourAgo: 0 })
        .map((row) => (row as { detail: string }).detail)
        .join("; ");
    expect(plan(STATS_SQL.jobsByState)).toMatch(/COVERING INDEX jobs_by_state/);
    expect(plan(STATS_SQL.itemsByState)).toMatch(/COVERING INDEX jobs_by_batch_state/);
    expect(plan(STATS_SQL.finishedSince)).toMatch(/COVERING INDEX jobs_by_finished/);
  });
});
