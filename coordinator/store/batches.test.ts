import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import {
  Batch,
  DEFAULT_LIMITS,
  type NewBatch,
  type Outcome,
  SubmitBatchResponse,
} from "../../protocol/index.js";
import {
  agentSpec,
  codeOf,
  FAILED,
  OK,
  onCleanup,
  openTestStore,
  T0,
  TTL,
  tempDir,
} from "../test-support/store-fixtures.js";
import type { Store } from "./index.js";
import { LEASE_SQL } from "./lease.js";

const batchOf = (count: number, spec: Partial<NewBatch["spec"]> = {}): NewBatch => ({
  spec: {
    source: "exports.main = (n) => n",
    filename: "main.js",
    retries: 0,
    isolate: false,
    ...spec,
  },
  inputs: Array.from({ length: count }, (_, index) => JSON.stringify(index)),
});

const enqueue = (store: Store, count: number, spec: Partial<NewBatch["spec"]> = {}, now = T0) =>
  store.enqueueBatch(batchOf(count, spec), DEFAULT_LIMITS, now);

const result = (value: unknown): Outcome => ({
  ok: true,
  result: value as never,
  logs: "",
  stats: { durationMs: 1 },
});

const failure = (code: "RUNTIME_ERROR" | "SANDBOX_ERROR"): Outcome => ({
  ok: false,
  error: { code, message: code },
  logs: "",
  stats: { durationMs: 1 },
});

/** Leases everything it may and completes each lease with its input echoed. */
function runAll(store: Store, agentId: string, now = T0 + 1) {
  for (;;) {
    const leased = store.lease(agentId, 4, now);
    if (leased.length === 0) return;
    for (const job of leased) store.complete(agentId, job.leaseId, result(job.spec.input), now);
  }
}

describe("enqueueBatch and getBatch", () => {
  it("queues every item as a job of its own, with its batch and index", () => {
    const store = openTestStore();
    const answer = enqueue(store, 3, { labels: { sweep: "a" }, maxParallel: 2 });
    expect(SubmitBatchResponse.parse(answer)).toEqual({
      id: answer.id,
      state: "queued",
      total: 3,
    });
    expect(answer.id).toMatch(/^b_[A-Za-z0-9_-]{20}$/);
    const batch = store.getBatch(answer.id);
    expect(Batch.parse(batch)).toEqual(batch);
    expect(batch).toMatchObject({
      state: "queued",
      total: 3,
      counts: { queued: 3, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
      labels: { sweep: "a" },
      maxParallel: 2,
      retries: 0,
      limits: DEFAULT_LIMITS,
    });
    const [first] = store.lease(store.registerAgent(agentSpec(), "h", T0).id, 1, T0);
    expect(first?.spec).toEqual({
      source: "exports.main = (n) => n",
      filename: "main.js",
      runtime: "node",
      input: 0,
      limits: DEFAULT_LIMITS,
      // The agent may run a batch's items one after another in one container.
      batchId: answer.id,
      isolate: false,
    });
    expect(store.getJob(first?.id ?? "")).toMatchObject({ batchId: answer.id, index: 0 });
  });

  it("leaves a batch's items out of the job list, which stays for single jobs", () => {
    const store = openTestStore();
    enqueue(store, 5);
    const single = store.enqueue({ source: "x", filename: "main.js" }, T0);
    expect(store.listJobs({ limit: 50 }).jobs.map((job) => job.id)).toEqual([single.id]);
    expect(store.listJobs({ state: "queued", limit: 50 }).jobs).toHaveLength(1);
  });

  it("lists batches newest first, page by page", () => {
    const store = openTestStore();
    const ids = [enqueue(store, 1).id, enqueue(store, 2).id, enqueue(store, 3).id];
    const first = store.listBatches({ limit: 2 });
    expect(first.batches.map((batch) => batch.id)).toEqual([ids[2], ids[1]]);
    const second = store.listBatches({ limit: 2, cursor: first.nextCursor });
    expect(second.batches.map((batch) => batch.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeUndefined();
  });

  it("throws NOT_FOUND for an unknown batch", () => {
    const store = openTestStore();
    expect(codeOf(() => store.getBatch("b_nope"))).toBe("NOT_FOUND");
    expect(codeOf(() => store.cancelBatch("b_nope", T0))).toBe("NOT_FOUND");
    expect(codeOf(() => store.retryBatch("b_nope"))).toBe("NOT_FOUND");
    expect(codeOf(() => store.batchResults("b_nope", { from: 0, order: "index" }, T0))).toBe(
      "NOT_FOUND",
    );
  });
});

describe("leasing a batch's items", () => {
  it("gives a single job queued after a big batch the next free slot (round-robin)", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec("n", 2), "h", T0);
    enqueue(store, 1_000);
    const [item] = store.lease(agent.id, 1, T0);
    expect(item?.id).toMatch(/-0$/);
    const single = store.enqueue({ source: "x", filename: "main.js" }, T0);
    const [next] = store.lease(agent.id, 1, T0);
    expect(next?.id).toBe(single.id);
  });

  it("takes turns between two batches, one item each", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec("n", 4), "h", T0);
    const a = enqueue(store, 10).id;
    const b = enqueue(store, 10).id;
    const leased = store.lease(agent.id, 4, T0).map((job) => store.getJob(job.id).batchId);
    expect(leased.filter((id) => id === a)).toHaveLength(2);
    expect(leased.filter((id) => id === b)).toHaveLength(2);
  });

  it("fills every free slot from the batches that have items when others run short", () => {
    // Each batch is first read for its share of the deal only; a short one
    // leaves its turns to the others, as if every batch had been read in full.
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec("n", 12), "h", T0);
    const short = enqueue(store, 1).id;
    const a = enqueue(store, 50).id;
    const b = enqueue(store, 50).id;
    store.enqueue({ source: "x", filename: "main.js" }, T0);
    const leased = store.lease(agent.id, 12, T0).map((job) => store.getJob(job.id).batchId);
    expect(leased).toHaveLength(12);
    expect(leased.filter((id) => id === short)).toHaveLength(1);
    expect(leased.filter((id) => !id)).toHaveLength(1);
    expect(leased.filter((id) => id === a)).toHaveLength(5);
    expect(leased.filter((id) => id === b)).toHaveLength(5);
  });

  it("never runs more than maxParallel items of a batch at once, across agents", () => {
    const store = openTestStore();
    const one = store.registerAgent(agentSpec("one", 4), "h1", T0);
    const two = store.registerAgent(agentSpec("two", 4), "h2", T0);
    enqueue(store, 10, { maxParallel: 3 });
    expect(store.lease(one.id, 4, T0)).toHaveLength(3);
    expect(store.lease(two.id, 4, T0)).toHaveLength(0);
    const [held] = store.lease(one.id, 0, T0);
    expect(held).toBeUndefined();
    const running = store.getBatch(store.listBatches({ limit: 1 }).batches[0]?.id ?? "");
    expect(running.counts.running).toBe(3);
  });

  it("leases a python batch only to an agent that offers python", () => {
    const store = openTestStore();
    const nodeOnly = store.registerAgent(agentSpec("node-only"), "h1", T0);
    const both = store.registerAgent(
      { ...agentSpec("both"), runtimes: ["node", "python"] },
      "h2",
      T0,
    );
    enqueue(store, 2, { source: "def main(n): return n", filename: "main.py" });
    expect(store.lease(nodeOnly.id, 4, T0)).toHaveLength(0);
    expect(store.lease(both.id, 4, T0).map((job) => job.spec.runtime)).toEqual([
      "python",
      "python",
    ]);
  });

  it("holds back a batch whose limits are past an agent's maxima", () => {
    const store = openTestStore();
    const small = store.registerAgent(
      { ...agentSpec("small"), maxLimits: { memoryMb: 128 } },
      "h",
      T0,
    );
    store.enqueueBatch(batchOf(2), { ...DEFAULT_LIMITS, memoryMb: 512 }, T0);
    expect(store.lease(small.id, 4, T0)).toHaveLength(0);
  });

  it("finds a queued single job through its own index, never by scanning a batch's items", () => {
    const dataDir = tempDir();
    const store = openTestStore(dataDir);
    enqueue(store, 10);
    const db = new Database(join(dataDir, "labrun.db"), { readonly: true });
    onCleanup(() => db.close());
    const plan = (sql: string, ...bindings: unknown[]) =>
      db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...bindings)
        .map((row) => (row as { detail: string }).detail)
        .join("; ");
    const fits = { room: 4, runtimes: '["node"]', ...DEFAULT_LIMITS };
    expect(plan(LEASE_SQL.singles, fits)).toMatch(/USING INDEX jobs_singles_queued/);
    expect(plan(LEASE_SQL.singles, fits)).not.toMatch(/TEMP B-TREE/);
    expect(plan(LEASE_SQL.items, "b", 4)).toMatch(/USING INDEX jobs_by_batch_state/);
    expect(plan(LEASE_SQL.items, "b", 4)).not.toMatch(/TEMP B-TREE/);
  });
});

describe("a batch's results", () => {
  it("streams lines in index order, each once every item before it is done", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 3);
    const [zero, one, two] = store.lease(agent.id, 3, T0);
    const read = (from: number) => store.batchResults(id, { from, order: "index" }, T0 + 5);
    store.complete(agent.id, one?.leaseId ?? "", result("one"), T0 + 1);
    expect(read(0)).toEqual({ lines: [], total: 3, complete: false });
    store.complete(agent.id, zero?.leaseId ?? "", result("zero"), T0 + 2);
    expect(read(0).lines.map((line) => [line.index, line.ok && line.result])).toEqual([
      [0, "zero"],
      [1, "one"],
    ]);
    expect(read(1).lines.map((line) => line.index)).toEqual([1]);
    store.complete(agent.id, two?.leaseId ?? "", FAILED, T0 + 3);
    expect(read(2)).toMatchObject({
      lines: [{ index: 2, ok: false, error: { code: "RUNTIME_ERROR" }, jobId: two?.id }],
      complete: true,
    });
    expect(read(3)).toEqual({ lines: [], total: 3, complete: true });
    expect(store.getBatch(id)).toMatchObject({
      state: "failed",
      finishedAt: new Date(T0 + 3).toISOString(),
      counts: { succeeded: 2, failed: 1 },
    });
  });

  it("streams in completion order, holding back what ended in this very millisecond", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 3);
    const [zero, one, two] = store.lease(agent.id, 3, T0);
    store.complete(agent.id, two?.leaseId ?? "", result(2), T0 + 1);
    store.complete(agent.id, zero?.leaseId ?? "", result(0), T0 + 2);
    const read = (from: number, now: number) =>
      store.batchResults(id, { from, order: "completion" }, now).lines.map((line) => line.index);
    expect(read(0, T0 + 2)).toEqual([2]);
    expect(read(0, T0 + 3)).toEqual([2, 0]);
    expect(read(1, T0 + 3)).toEqual([0]);
    store.complete(agent.id, one?.leaseId ?? "", result(1), T0 + 3);
    // Finished: nothing more can end, so nothing is held back.
    expect(store.batchResults(id, { from: 2, order: "completion" }, T0 + 3)).toMatchObject({
      lines: [{ index: 1 }],
      complete: true,
    });
  });
});

describe("cancel and retry", () => {
  it("cancels queued and running items at once; the agent is told to stop its lease", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec("n", 2), "h", T0);
    const { id } = enqueue(store, 5);
    const [running] = store.lease(agent.id, 1, T0);
    store.heartbeat(agent.id, [running?.leaseId ?? ""], T0 + 1);
    const { batch, cancelled } = store.cancelBatch(id, T0 + 2);
    expect(cancelled).toHaveLength(5);
    expect(batch).toMatchObject({
      state: "cancelled",
      counts: { queued: 0, running: 0, cancelled: 5 },
    });
    expect(store.heartbeat(agent.id, [running?.leaseId ?? ""], T0 + 3)).toEqual([running?.leaseId]);
    expect(codeOf(() => store.complete(agent.id, running?.leaseId ?? "", OK, T0 + 4))).toBe(
      "STALE_LEASE",
    );
    expect(store.lease(agent.id, 2, T0 + 5)).toHaveLength(0);
    expect(store.getJob(running?.id ?? "").outcome).toMatchObject({
      ok: false,
      error: { code: "CANCELLED" },
    });
  });

  it("queues only the failed items again on retry, and the batch runs until they end", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 3);
    const leases = store.lease(agent.id, 3, T0);
    store.complete(agent.id, leases[0]?.leaseId ?? "", OK, T0 + 1);
    store.complete(agent.id, leases[1]?.leaseId ?? "", FAILED, T0 + 1);
    store.complete(agent.id, leases[2]?.leaseId ?? "", FAILED, T0 + 1);
    expect(store.getBatch(id).state).toBe("failed");
    expect(store.retryBatch(id)).toBe(2);
    expect(store.getBatch(id)).toMatchObject({
      state: "running",
      counts: { queued: 2, succeeded: 1, failed: 0 },
    });
    expect(store.getBatch(id).finishedAt).toBeUndefined();
    // The failed run's late result is refused; the new lease's is taken.
    expect(codeOf(() => store.complete(agent.id, leases[1]?.leaseId ?? "", OK, T0 + 2))).toBe(
      "STALE_LEASE",
    );
    runAll(store, agent.id, T0 + 3);
    expect(store.getBatch(id)).toMatchObject({ state: "succeeded", counts: { succeeded: 3 } });
  });

  it("runs an item again after a program failure only while the batch's retries last", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 1, { retries: 1 });
    const [first] = store.lease(agent.id, 1, T0);
    const again = store.complete(agent.id, first?.leaseId ?? "", FAILED, T0 + 1);
    expect(again).toMatchObject({ changed: true, value: { state: "queued" } });
    // The same result repeated (a lost answer) is a repeat, not a second failure.
    expect(store.complete(agent.id, first?.leaseId ?? "", FAILED, T0 + 1).changed).toBe(false);
    const [second] = store.lease(agent.id, 1, T0 + 2);
    expect(second?.attempt).toBe(2);
    store.complete(agent.id, second?.leaseId ?? "", FAILED, T0 + 3);
    expect(store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
  });

  it("runs an item again after a sandbox failure while it has attempts, without --retries", () => {
    const store = openTestStore(undefined, 2);
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 1);
    const [first] = store.lease(agent.id, 1, T0);
    store.complete(agent.id, first?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 1);
    const [second] = store.lease(agent.id, 1, T0 + 2);
    store.complete(agent.id, second?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 3);
    expect(store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
    expect(store.getJob(second?.id ?? "").attempts).toBe(2);
  });

  it("keeps a single job's one outcome: a failed program is not run again", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const job = store.enqueue({ source: "x", filename: "main.js" }, T0);
    const [lease] = store.lease(agent.id, 1, T0);
    store.complete(agent.id, lease?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 1);
    expect(store.getJob(job.id).state).toBe("failed");
  });

  it("fails an item with NODE_LOST after its last attempt, and the batch ends", () => {
    const store = openTestStore(undefined, 1);
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 1);
    store.lease(agent.id, 1, T0);
    expect(store.expireLeases(T0 + TTL + 1).failed).toHaveLength(1);
    expect(store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
  });
});

describe("completeMany", () => {
  it("takes each result on its own in one call: a stale one refuses only itself", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const { id } = enqueue(store, 2);
    const [a, b] = store.lease(agent.id, 2, T0);
    const answers = store.completeMany(
      agent.id,
      [
        { leaseId: a?.leaseId ?? "", outcome: OK },
        { leaseId: "l_unknown", outcome: OK },
        { leaseId: b?.leaseId ?? "", outcome: OK },
        { leaseId: a?.leaseId ?? "", outcome: OK },
      ],
      T0 + 1,
    );
    expect(
      answers.map((answer) => ("refused" in answer ? answer.refused.code : answer.changed)),
    ).toEqual([true, "STALE_LEASE", true, false]);
    expect(store.getBatch(id).state).toBe("succeeded");
  });
});

describe("retention of batches", () => {
  it("deletes a finished batch with all its items, and never an item of a running one", () => {
    const store = openTestStore();
    const agent = store.registerAgent(agentSpec(), "h", T0);
    const done = enqueue(store, 3).id;
    runAll(store, agent.id, T0 + 1);
    const running = enqueue(store, 2).id;
    const [lease] = store.lease(agent.id, 1, T0 + 2);
    store.complete(agent.id, lease?.leaseId ?? "", OK, T0 + 2);
    while (store.pruneFinished(T0 + 1_000) > 0);
    expect(codeOf(() => store.getBatch(done))).toBe("NOT_FOUND");
    expect(codeOf(() => store.getJob(`j${done.slice(1)}-0`))).toBe("NOT_FOUND");
    expect(store.getBatch(running).counts).toMatchObject({ succeeded: 1, queued: 1 });
  });
});
