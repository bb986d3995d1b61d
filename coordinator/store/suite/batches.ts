import { describe, expect, it } from "vitest";
import {
  Batch,
  DEFAULT_LIMITS,
  type NewBatch,
  type Outcome,
  SubmitBatchResponse,
} from "../../../protocol/index.js";
import type { Store } from "../interfaces.js";
import { agentSpec, codeOf, FAILED, inOrder, OK, T0, TTL } from "./fixtures.js";
import type { SuiteContext } from "./types.js";

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
async function runAll(store: Store, agentId: string, now = T0 + 1) {
  for (;;) {
    const leased = await store.lease(agentId, 4, now);
    if (leased.length === 0) return;
    for (const job of leased)
      await store.complete(agentId, job.leaseId, result(job.spec.input), now);
  }
}

/** Batches: submit, leasing their items, results, cancel and retry, completeMany, retention. */
export function batchSuite({ open }: SuiteContext): void {
  describe("enqueueBatch and getBatch", () => {
    it("queues every item as a job of its own, with its batch and index", async () => {
      const store = await open();
      const answer = await enqueue(store, 3, { labels: { sweep: "a" }, maxParallel: 2 });
      expect(SubmitBatchResponse.parse(answer)).toEqual({
        id: answer.id,
        state: "queued",
        total: 3,
      });
      expect(answer.id).toMatch(/^b_[A-Za-z0-9_-]{20}$/);
      const batch = await store.getBatch(answer.id);
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
      const [first] = await store.lease(
        (await store.registerAgent(agentSpec(), "h", T0)).id,
        1,
        T0,
      );
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
      expect(await store.getJob(first?.id ?? "")).toMatchObject({ batchId: answer.id, index: 0 });
    });

    it("leaves a batch's items out of the job list, which stays for single jobs", async () => {
      const store = await open();
      await enqueue(store, 5);
      const single = await store.enqueue({ source: "x", filename: "main.js" }, T0);
      expect((await store.listJobs({ limit: 50 })).jobs.map((job) => job.id)).toEqual([single.id]);
      expect((await store.listJobs({ state: "queued", limit: 50 })).jobs).toHaveLength(1);
    });

    it("lists batches newest first, page by page", async () => {
      const store = await open();
      const ids = [
        (await enqueue(store, 1)).id,
        (await enqueue(store, 2)).id,
        (await enqueue(store, 3)).id,
      ];
      const first = await store.listBatches({ limit: 2 });
      expect(first.batches.map((batch) => batch.id)).toEqual([ids[2], ids[1]]);
      const second = await store.listBatches({ limit: 2, cursor: first.nextCursor });
      expect(second.batches.map((batch) => batch.id)).toEqual([ids[0]]);
      expect(second.nextCursor).toBeUndefined();
    });

    it("throws NOT_FOUND for an unknown batch", async () => {
      const store = await open();
      expect(await codeOf(() => store.getBatch("b_nope"))).toBe("NOT_FOUND");
      expect(await codeOf(() => store.cancelBatch("b_nope", T0))).toBe("NOT_FOUND");
      expect(await codeOf(() => store.retryBatch("b_nope"))).toBe("NOT_FOUND");
      expect(
        await codeOf(() => store.batchResults("b_nope", { from: 0, order: "index" }, T0)),
      ).toBe("NOT_FOUND");
    });
  });

  describe("leasing a batch's items", () => {
    it("gives a single job queued after a big batch the next free slot (round-robin)", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n", 2), "h", T0);
      await enqueue(store, 1_000);
      const [item] = await store.lease(agent.id, 1, T0);
      expect(item?.id).toMatch(/-0$/);
      const single = await store.enqueue({ source: "x", filename: "main.js" }, T0);
      const [next] = await store.lease(agent.id, 1, T0);
      expect(next?.id).toBe(single.id);
    });

    it("takes turns between two batches, one item each", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
      const a = (await enqueue(store, 10)).id;
      const b = (await enqueue(store, 10)).id;
      const leased = await inOrder(
        await store.lease(agent.id, 4, T0),
        async (job) => (await store.getJob(job.id)).batchId,
      );
      expect(leased.filter((id) => id === a)).toHaveLength(2);
      expect(leased.filter((id) => id === b)).toHaveLength(2);
    });

    it("fills every free slot from the batches that have items when others run short", async () => {
      // Each batch is first read for its share of the deal only; a short one
      // leaves its turns to the others, as if every batch had been read in full.
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n", 12), "h", T0);
      const short = (await enqueue(store, 1)).id;
      const a = (await enqueue(store, 50)).id;
      const b = (await enqueue(store, 50)).id;
      await store.enqueue({ source: "x", filename: "main.js" }, T0);
      const leased = await inOrder(
        await store.lease(agent.id, 12, T0),
        async (job) => (await store.getJob(job.id)).batchId,
      );
      expect(leased).toHaveLength(12);
      expect(leased.filter((id) => id === short)).toHaveLength(1);
      expect(leased.filter((id) => !id)).toHaveLength(1);
      expect(leased.filter((id) => id === a)).toHaveLength(5);
      expect(leased.filter((id) => id === b)).toHaveLength(5);
    });

    it("never runs more than maxParallel items of a batch at once, across agents", async () => {
      const store = await open();
      const one = await store.registerAgent(agentSpec("one", 4), "h1", T0);
      const two = await store.registerAgent(agentSpec("two", 4), "h2", T0);
      await enqueue(store, 10, { maxParallel: 3 });
      expect(await store.lease(one.id, 4, T0)).toHaveLength(3);
      expect(await store.lease(two.id, 4, T0)).toHaveLength(0);
      const [held] = await store.lease(one.id, 0, T0);
      expect(held).toBeUndefined();
      const running = await store.getBatch(
        (await store.listBatches({ limit: 1 })).batches[0]?.id ?? "",
      );
      expect(running.counts.running).toBe(3);
    });

    it("leases a python batch only to an agent that offers python", async () => {
      const store = await open();
      const nodeOnly = await store.registerAgent(agentSpec("node-only"), "h1", T0);
      const both = await store.registerAgent(
        { ...agentSpec("both"), runtimes: ["node", "python"] },
        "h2",
        T0,
      );
      await enqueue(store, 2, { source: "def main(n): return n", filename: "main.py" });
      expect(await store.lease(nodeOnly.id, 4, T0)).toHaveLength(0);
      expect((await store.lease(both.id, 4, T0)).map((job) => job.spec.runtime)).toEqual([
        "python",
        "python",
      ]);
    });

    it("holds back a batch whose limits are past an agent's maxima", async () => {
      const store = await open();
      const small = await store.registerAgent(
        { ...agentSpec("small"), maxLimits: { memoryMb: 128 } },
        "h",
        T0,
      );
      await store.enqueueBatch(batchOf(2), { ...DEFAULT_LIMITS, memoryMb: 512 }, T0);
      expect(await store.lease(small.id, 4, T0)).toHaveLength(0);
    });
  });

  describe("a batch's results", () => {
    it("streams lines in index order, each once every item before it is done", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 3);
      const [zero, one, two] = await store.lease(agent.id, 3, T0);
      const read = (from: number) => store.batchResults(id, { from, order: "index" }, T0 + 5);
      await store.complete(agent.id, one?.leaseId ?? "", result("one"), T0 + 1);
      expect(await read(0)).toEqual({ lines: [], total: 3, complete: false });
      await store.complete(agent.id, zero?.leaseId ?? "", result("zero"), T0 + 2);
      expect((await read(0)).lines.map((line) => [line.index, line.ok && line.result])).toEqual([
        [0, "zero"],
        [1, "one"],
      ]);
      expect((await read(1)).lines.map((line) => line.index)).toEqual([1]);
      await store.complete(agent.id, two?.leaseId ?? "", FAILED, T0 + 3);
      expect(await read(2)).toMatchObject({
        lines: [{ index: 2, ok: false, error: { code: "RUNTIME_ERROR" }, jobId: two?.id }],
        complete: true,
      });
      expect(await read(3)).toEqual({ lines: [], total: 3, complete: true });
      expect(await store.getBatch(id)).toMatchObject({
        state: "failed",
        finishedAt: new Date(T0 + 3).toISOString(),
        counts: { succeeded: 2, failed: 1 },
      });
    });

    it("streams in completion order, holding back what ended in this very millisecond", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 3);
      const [zero, one, two] = await store.lease(agent.id, 3, T0);
      await store.complete(agent.id, two?.leaseId ?? "", result(2), T0 + 1);
      await store.complete(agent.id, zero?.leaseId ?? "", result(0), T0 + 2);
      const read = async (from: number, now: number) =>
        (await store.batchResults(id, { from, order: "completion" }, now)).lines.map(
          (line) => line.index,
        );
      expect(await read(0, T0 + 2)).toEqual([2]);
      expect(await read(0, T0 + 3)).toEqual([2, 0]);
      expect(await read(1, T0 + 3)).toEqual([0]);
      await store.complete(agent.id, one?.leaseId ?? "", result(1), T0 + 3);
      // Finished: nothing more can end, so nothing is held back.
      expect(await store.batchResults(id, { from: 2, order: "completion" }, T0 + 3)).toMatchObject({
        lines: [{ index: 1 }],
        complete: true,
      });
    });
  });

  describe("cancel and retry", () => {
    it("cancels queued and running items at once; the agent is told to stop its lease", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n", 2), "h", T0);
      const { id } = await enqueue(store, 5);
      const [running] = await store.lease(agent.id, 1, T0);
      await store.heartbeat(agent.id, [running?.leaseId ?? ""], T0 + 1);
      const { batch, cancelled } = await store.cancelBatch(id, T0 + 2);
      expect(cancelled).toHaveLength(5);
      expect(batch).toMatchObject({
        state: "cancelled",
        counts: { queued: 0, running: 0, cancelled: 5 },
      });
      expect(await store.heartbeat(agent.id, [running?.leaseId ?? ""], T0 + 3)).toEqual([
        running?.leaseId,
      ]);
      expect(await codeOf(() => store.complete(agent.id, running?.leaseId ?? "", OK, T0 + 4))).toBe(
        "STALE_LEASE",
      );
      expect(await store.lease(agent.id, 2, T0 + 5)).toHaveLength(0);
      expect((await store.getJob(running?.id ?? "")).outcome).toMatchObject({
        ok: false,
        error: { code: "CANCELLED" },
      });
    });

    it("queues only the failed items again on retry, and the batch runs until they end", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 3);
      const leases = await store.lease(agent.id, 3, T0);
      await store.complete(agent.id, leases[0]?.leaseId ?? "", OK, T0 + 1);
      await store.complete(agent.id, leases[1]?.leaseId ?? "", FAILED, T0 + 1);
      await store.complete(agent.id, leases[2]?.leaseId ?? "", FAILED, T0 + 1);
      expect((await store.getBatch(id)).state).toBe("failed");
      expect(await store.retryBatch(id)).toBe(2);
      expect(await store.getBatch(id)).toMatchObject({
        state: "running",
        counts: { queued: 2, succeeded: 1, failed: 0 },
      });
      expect((await store.getBatch(id)).finishedAt).toBeUndefined();
      // The failed run's late result is refused; the new lease's is taken.
      expect(
        await codeOf(() => store.complete(agent.id, leases[1]?.leaseId ?? "", OK, T0 + 2)),
      ).toBe("STALE_LEASE");
      await runAll(store, agent.id, T0 + 3);
      expect(await store.getBatch(id)).toMatchObject({
        state: "succeeded",
        counts: { succeeded: 3 },
      });
    });

    it("runs an item again after a program failure only while the batch's retries last", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 1, { retries: 1 });
      const [first] = await store.lease(agent.id, 1, T0);
      const again = await store.complete(agent.id, first?.leaseId ?? "", FAILED, T0 + 1);
      expect(again).toMatchObject({ changed: true, value: { state: "queued" } });
      // The same result repeated (a lost answer) is a repeat, not a second failure.
      expect((await store.complete(agent.id, first?.leaseId ?? "", FAILED, T0 + 1)).changed).toBe(
        false,
      );
      const [second] = await store.lease(agent.id, 1, T0 + 2);
      expect(second?.attempt).toBe(2);
      await store.complete(agent.id, second?.leaseId ?? "", FAILED, T0 + 3);
      expect(await store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
    });

    it("runs an item again after a sandbox failure while it has attempts, without --retries", async () => {
      const store = await open(2);
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 1);
      const [first] = await store.lease(agent.id, 1, T0);
      await store.complete(agent.id, first?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 1);
      const [second] = await store.lease(agent.id, 1, T0 + 2);
      await store.complete(agent.id, second?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 3);
      expect(await store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
      expect((await store.getJob(second?.id ?? "")).attempts).toBe(2);
    });

    it("keeps a single job's one outcome: a failed program is not run again", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const job = await store.enqueue({ source: "x", filename: "main.js" }, T0);
      const [lease] = await store.lease(agent.id, 1, T0);
      await store.complete(agent.id, lease?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 1);
      expect((await store.getJob(job.id)).state).toBe("failed");
    });

    it("fails an item with NODE_LOST after its last attempt, and the batch ends", async () => {
      const store = await open(1);
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 1);
      await store.lease(agent.id, 1, T0);
      expect((await store.expireLeases(T0 + TTL + 1)).failed).toHaveLength(1);
      expect(await store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
    });
  });

  describe("completeMany", () => {
    it("takes each result on its own in one call: a stale one refuses only itself", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 2);
      const [a, b] = await store.lease(agent.id, 2, T0);
      const answers = await store.completeMany(
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
      expect((await store.getBatch(id)).state).toBe("succeeded");
    });

    it("ends, runs again and keeps each result of one group as `complete` would, outcomes exactly as sent", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 3);
      const [a, b, c] = await store.lease(agent.id, 3, T0);
      const odd = result({ text: 'quote " backslash \\ é 𝄞 \u2028', n: 0.1 + 0.2 });
      const answers = await store.completeMany(
        agent.id,
        [
          { leaseId: a?.leaseId ?? "", outcome: odd },
          { leaseId: b?.leaseId ?? "", outcome: failure("SANDBOX_ERROR") },
          { leaseId: c?.leaseId ?? "", outcome: failure("RUNTIME_ERROR") },
          { leaseId: b?.leaseId ?? "", outcome: failure("SANDBOX_ERROR") },
        ],
        T0 + 1,
      );
      expect(
        answers.map((answer) =>
          "refused" in answer ? answer.refused.code : [answer.value.state, answer.changed],
        ),
      ).toEqual([
        ["succeeded", true],
        ["queued", true],
        ["failed", true],
        ["queued", false],
      ]);
      expect((await store.getJob(a?.id ?? "")).outcome).toEqual(odd);
      expect((await store.getJob(c?.id ?? "")).outcome).toEqual(failure("RUNTIME_ERROR"));
      expect((await store.getJob(b?.id ?? "")).state).toBe("queued");
      expect((await store.getBatch(id)).counts).toMatchObject({
        queued: 1,
        succeeded: 1,
        failed: 1,
      });
    });
  });

  describe("the batch page's reads", () => {
    it("pages the finished items in the order they ended, after a cursor and before a time", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const { id } = await enqueue(store, 4);
      const leased = await store.lease(agent.id, 4, T0);
      const lease = (index: number) => leased[index]?.leaseId ?? "";
      await store.heartbeat(agent.id, [lease(0)], T0 + 1);
      await store.complete(agent.id, lease(1), FAILED, T0 + 3);
      await store.complete(agent.id, lease(2), OK, T0 + 5);
      await store.complete(agent.id, lease(0), OK, T0 + 5);
      await store.cancel(`j${id.slice(1)}-3`, T0 + 6);
      const ends = await store.batchItemEnds(id, { before: T0 + 6, limit: 10 });
      expect(ends).toEqual([
        { index: 1, finishedAt: T0 + 3, startedAt: T0, state: "failed", durationMs: 3 },
        { index: 0, finishedAt: T0 + 5, startedAt: T0 + 1, state: "succeeded", durationMs: 7 },
        { index: 2, finishedAt: T0 + 5, startedAt: T0, state: "succeeded", durationMs: 7 },
      ]);
      // An item's run starts at its first heartbeat, else when it was leased.
      // Page by page from the cursor: each item once, the tie at T0+5 broken by index.
      const first = await store.batchItemEnds(id, { before: T0 + 6, limit: 2 });
      expect(first.map((end) => end.index)).toEqual([1, 0]);
      const next = await store.batchItemEnds(id, {
        after: { finishedAt: T0 + 5, index: 0 },
        before: T0 + 6,
        limit: 2,
      });
      expect(next.map((end) => end.index)).toEqual([2]);
      const later = await store.batchItemEnds(id, {
        after: { finishedAt: T0 + 5, index: 2 },
        before: T0 + 7,
        limit: 2,
      });
      expect(later).toEqual([
        { index: 3, finishedAt: T0 + 6, startedAt: null, state: "cancelled", durationMs: 6 },
      ]);
      expect(await store.batchItemEnds("b_unknown", { before: T0 + 7, limit: 2 })).toEqual([]);
    });

    it("lists the failed items with the lowest indexes and counts the items ended since a time", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n", 8), "h", T0);
      const { id } = await enqueue(store, 5);
      const leased = await store.lease(agent.id, 5, T0);
      const lease = (index: number) => leased[index]?.leaseId ?? "";
      await store.complete(agent.id, lease(0), OK, T0 + 1);
      await store.complete(agent.id, lease(3), FAILED, T0 + 2);
      await store.complete(agent.id, lease(1), FAILED, T0 + 3);
      await store.complete(agent.id, lease(4), FAILED, T0 + 4);
      const error = { code: "RUNTIME_ERROR", message: "boom" };
      const jobId = (index: number) => `j${id.slice(1)}-${index}`;
      expect(await store.batchFailures(id, { limit: 2, since: T0 + 3 })).toEqual({
        items: [
          { index: 1, jobId: jobId(1), error },
          { index: 3, jobId: jobId(3), error },
        ],
        more: true,
        finishedSince: 2,
      });
      const all = await store.batchFailures(id, { limit: 3, since: T0 });
      expect(all.items.map((item) => item.index)).toEqual([1, 3, 4]);
      expect(all).toMatchObject({ more: false, finishedSince: 4 });
      expect(await store.batchFailures("b_unknown", { limit: 3, since: T0 })).toEqual({
        items: [],
        more: false,
        finishedSince: 0,
      });
    });
  });

  describe("retention of batches", () => {
    it("deletes a finished batch with all its items, and never an item of a running one", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const done = (await enqueue(store, 3)).id;
      await runAll(store, agent.id, T0 + 1);
      const running = (await enqueue(store, 2)).id;
      const [lease] = await store.lease(agent.id, 1, T0 + 2);
      await store.complete(agent.id, lease?.leaseId ?? "", OK, T0 + 2);
      while ((await store.pruneFinished(T0 + 1_000)) > 0);
      expect(await codeOf(() => store.getBatch(done))).toBe("NOT_FOUND");
      expect(await codeOf(() => store.getJob(`j${done.slice(1)}-0`))).toBe("NOT_FOUND");
      expect((await store.getBatch(running)).counts).toMatchObject({ succeeded: 1, queued: 1 });
    });
  });
}
