import { join } from "node:path";
import Database from "better-sqlite3";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  BatchSummary,
  DURATION_BUCKETS_MS,
  type Outcome,
  SUMMARY_FAILED_ITEMS,
} from "../protocol/index.js";
import { createApp } from "./app.js";
import { bucketOf } from "./batchSummary.js";
import { Notifier } from "./notifier.js";
import { BATCH_FAILURES_SQL } from "./store/batchFailures.js";
import { BATCH_ITEM_ENDS_SQL } from "./store/batchItemEnds.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const ok = (durationMs: number): Outcome => ({
  ok: true,
  result: null,
  logs: "",
  stats: { durationMs },
});
const failed = (durationMs: number, message: string): Outcome => ({
  ok: false,
  error: { code: "RUNTIME_ERROR", message, detail: "a long stack" },
  logs: "",
  stats: { durationMs },
});

/**
 * The app over a temp store with a clock the test moves; the test plays the
 * agent through the store's verbs, each at the current time.
 */
async function setup() {
  const parts = openTempCoordinator("summary");
  cleanups.push(parts.close);
  let now = Date.parse("2026-01-01T00:00:00.000Z");
  const clock = () => now;
  const app = createApp({
    ...parts,
    clock,
    notifier: new Notifier(),
    logger: pino({ level: "silent" }),
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await app.request(path, {
      method,
      headers: {
        authorization: `Bearer ${parts.tokens.client}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const agent = await parts.store.registerAgent(
    { name: "sim", hostname: "h", slots: 5000, version: "t", labels: {} },
    "hash",
    now,
  );
  const submit = async (count: number) => {
    const inputs = Array.from({ length: count }, (_, i) => i);
    const { status, body } = await call("POST", "/v1/batches", {
      source: "exports.main = (n) => n",
      inputs,
    });
    expect(status).toBe(201);
    return body.id as string;
  };
  /** Leases up to `count` items and finishes each with `outcome(index)`, 1 ms apart. */
  const run = async (count: number, outcome: (index: number) => Outcome) => {
    const leased = await parts.store.lease(agent.id, count, now);
    for (const job of leased) {
      now += 1;
      const index = (await parts.store.getJob(job.id)).index as number;
      await parts.store.complete(agent.id, job.leaseId, outcome(index), now);
    }
    return leased.length;
  };
  const summary = async (id: string) => {
    now += 1;
    const { status, body } = await call("GET", `/v1/batches/${id}/summary`);
    expect(status).toBe(200);
    return BatchSummary.parse(body);
  };
  const tick = (ms: number) => {
    now += ms;
  };
  return { ...parts, call, submit, run, summary, tick, clock };
}

const bucket = (s: BatchSummary, upToMs: number | null) =>
  s.durations.buckets.find((b) => b.upToMs === upToMs);

describe("GET /v1/batches/:id/summary", () => {
  it("puts each finished item's run time in its bucket and lists the failed items with their errors", async () => {
    const t = await setup();
    const id = await t.submit(6);
    const durations = [3, 40, 40, 700, 0.5, 4_000_000];
    await t.run(6, (i) =>
      i === 3 ? failed(durations[i] ?? 0, "item 3 broke") : ok(durations[i] ?? 0),
    );
    const s = await t.summary(id);

    expect(s.batch).toMatchObject({ id, state: "failed", counts: { succeeded: 5, failed: 1 } });
    expect(s.durations.buckets.map((b) => b.upToMs)).toEqual([...DURATION_BUCKETS_MS, null]);
    expect(s.durations.count).toBe(6);
    expect(s.durations.minMs).toBe(0.5);
    expect(s.durations.maxMs).toBe(4_000_000);
    expect(bucket(s, 1)).toEqual({ upToMs: 1, succeeded: 1, failed: 0 });
    expect(bucket(s, 5)).toEqual({ upToMs: 5, succeeded: 1, failed: 0 });
    expect(bucket(s, 50)).toEqual({ upToMs: 50, succeeded: 2, failed: 0 });
    expect(bucket(s, 1000)).toEqual({ upToMs: 1000, succeeded: 0, failed: 1 });
    expect(bucket(s, null)).toEqual({ upToMs: null, succeeded: 1, failed: 0 });
    const total = s.durations.buckets.reduce((n, b) => n + b.succeeded + b.failed, 0);
    expect(total).toBe(6);

    expect(s.failed).toEqual({
      items: [
        {
          index: 3,
          jobId: expect.stringMatching(/^j_/),
          error: { code: "RUNTIME_ERROR", message: "item 3 broke" },
        },
      ],
      more: false,
    });
    expect(s.recent).toEqual({ windowMs: 10_000, finished: 6 });
    expect(Date.parse(s.lastFinishedAt ?? "")).toBeGreaterThan(Date.parse(s.firstStartedAt ?? ""));
    t.tick(10_001);
    expect((await t.summary(id)).recent.finished).toBe(0);
  });

  it("reads on from where it was: each item counted once however often it is asked", async () => {
    const t = await setup();
    const id = await t.submit(10);
    const s0 = await t.summary(id);
    expect(s0.durations.count).toBe(0);
    expect(s0.firstStartedAt).toBeUndefined();
    expect(s0.batch.state).toBe("queued");

    await t.run(4, () => ok(7));
    expect((await t.summary(id)).durations.count).toBe(4);
    expect((await t.summary(id)).durations.count).toBe(4);
    await t.run(6, () => ok(70));
    const s = await t.summary(id);
    expect(s.durations.count).toBe(10);
    expect(bucket(s, 10)?.succeeded).toBe(4);
    expect(bucket(s, 100)?.succeeded).toBe(6);
    expect(s.batch.state).toBe("succeeded");
  });

  it("leaves an item that ends in the very millisecond of a read for the next read", async () => {
    const t = await setup();
    const id = await t.submit(2);
    await t.run(1, () => ok(1));
    // No tick: the summary reads at the time the item ended.
    const { body } = await t.call("GET", `/v1/batches/${id}/summary`);
    expect(BatchSummary.parse(body).durations.count).toBe(0);
    expect((await t.summary(id)).durations.count).toBe(1);
  });

  it("folds a batch larger than one read step, every item once", async () => {
    const t = await setup();
    const id = await t.submit(4_500);
    expect(
      await t.run(4_500, (i) =>
        i % 1000 === 0 ? failed(3000, `item ${i}`) : ok(i % 2 ? 15 : 150),
      ),
    ).toBe(4_500);
    const s = await t.summary(id);
    expect(s.durations.count).toBe(4_500);
    expect(bucket(s, 20)?.succeeded).toBe(2_250);
    expect(bucket(s, 200)?.succeeded).toBe(2_245);
    expect(bucket(s, 5000)?.failed).toBe(5);
    expect(s.failed.items.map((item) => item.index)).toEqual([0, 1000, 2000, 3000, 4000]);
    // 4,500 items through a real store and HTTP: ~1.5 s on a quiet machine, 6 s at load 12.
  }, 30_000);

  it("lists the first failed items by index and says there are more", async () => {
    const t = await setup();
    const id = await t.submit(SUMMARY_FAILED_ITEMS + 5);
    await t.run(SUMMARY_FAILED_ITEMS + 5, (i) => failed(1, `item ${i}`));
    const s = await t.summary(id);
    expect(s.failed.items).toHaveLength(SUMMARY_FAILED_ITEMS);
    expect(s.failed.items.map((item) => item.index)).toEqual(
      Array.from({ length: SUMMARY_FAILED_ITEMS }, (_, i) => i),
    );
    expect(s.failed.more).toBe(true);
  });

  it("leaves cancelled items out of the histogram", async () => {
    const t = await setup();
    const id = await t.submit(5);
    await t.run(2, () => ok(3));
    t.tick(1);
    expect((await t.call("POST", `/v1/batches/${id}/cancel`)).status).toBe(200);
    const s = await t.summary(id);
    expect(s.batch.state).toBe("cancelled");
    expect(s.batch.counts.cancelled).toBe(3);
    expect(s.durations.count).toBe(2);
    expect(s.recent.finished).toBe(5);
  });

  it("after a retry, counts a retried item by its new run only", async () => {
    const t = await setup();
    const id = await t.submit(3);
    await t.run(3, (i) => (i === 1 ? failed(600, "first try") : ok(3)));
    const before = await t.summary(id);
    expect(bucket(before, 1000)?.failed).toBe(1);
    expect((await t.call("POST", `/v1/batches/${id}/retry`)).body).toEqual({ requeued: 1 });
    await t.run(1, () => ok(30));
    const after = await t.summary(id);
    expect(after.durations.count).toBe(3);
    expect(bucket(after, 1000)?.failed).toBe(0);
    expect(bucket(after, 50)?.succeeded).toBe(1);
    expect(after.failed.items).toEqual([]);
    expect(after.batch.state).toBe("succeeded");
  });

  it("refuses an unknown batch (404) and a malformed id (400)", async () => {
    const t = await setup();
    const missing = await t.call("GET", "/v1/batches/b_nope/summary");
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: "NOT_FOUND" } });
    const bad = await t.call("GET", "/v1/batches/j_x/summary");
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: "VALIDATION_ERROR" } });
  });
});

describe("the summary's reads", () => {
  const plan = (db: Database.Database, sql: string, params: unknown) =>
    (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(params as never) as { detail: string }[])
      .map((row) => row.detail)
      .join("; ");

  it("walk the batch's indexes: no scan, no sort", () => {
    const parts = openTempCoordinator("summary-plan");
    cleanups.push(parts.close);
    const db = new Database(join(parts.dataDir, "labrun.db"), { readonly: true });
    cleanups.push(() => db.close());
    const ends = plan(db, BATCH_ITEM_ENDS_SQL, {
      batchId: "b_x",
      before: 1,
      afterAt: 0,
      afterIndex: 0,
      limit: 10,
    });
    expect(ends).toMatch(/SEARCH jobs USING INDEX jobs_by_batch_finished/);
    expect(ends).not.toMatch(/TEMP B-TREE|SCAN/);
    for (const sql of Object.values(BATCH_FAILURES_SQL)) {
      const detail = plan(db, sql, ["b_x", 1]);
      expect(detail).toMatch(/SEARCH jobs USING (COVERING )?INDEX jobs_by_batch_/);
      expect(detail).not.toMatch(/TEMP B-TREE|SCAN/);
    }
  });

  it("bucket a duration by the first bound it does not exceed", () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1)).toBe(0);
    expect(bucketOf(1.01)).toBe(1);
    expect(bucketOf(3_600_000)).toBe(DURATION_BUCKETS_MS.length - 1);
    expect(bucketOf(3_600_001)).toBe(DURATION_BUCKETS_MS.length);
  });
});
