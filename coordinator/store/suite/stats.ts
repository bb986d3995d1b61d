import { describe, expect, it } from "vitest";
import { ClusterStats, DEFAULT_LIMITS, type Outcome } from "../../../protocol/index.js";
import type { Store } from "../interfaces.js";
import { T0, TTL } from "./fixtures.js";
import type { SuiteContext } from "./types.js";

const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };

const submit = (store: Store, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1", filename: "main.js" }, now);
const agent = (store: Store, name: string, now = T0) =>
  store.registerAgent(
    { name, hostname: "h", slots: 8, version: "v", labels: {} },
    `hash-${name}`,
    now,
  );

/** The cluster's numbers (stats). */
export function statsSuite({ open }: SuiteContext): void {
  describe("stats", () => {
    it("counts nothing in an empty store, in the protocol's shape", async () => {
      const store = await open(1);
      const stats = ClusterStats.parse(await store.stats(T0));
      expect(stats).toEqual({
        at: new Date(T0).toISOString(),
        jobs: { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
        finished: { lastMinute: 0, lastHour: 0 },
        nodes: { ready: 0, draining: 0, lost: 0 },
        batches: { active: 0, succeeded: 0, failed: 0, cancelled: 0 },
        batchItems: { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
      });
    });

    it("counts batches and their items by state", async () => {
      const store = await open(1);
      const node = await agent(store, "n");
      const batch = await store.enqueueBatch(
        {
          spec: { source: "x", filename: "main.js", retries: 0, isolate: false },
          inputs: ["1", "2", "3"],
        },
        DEFAULT_LIMITS,
        T0,
      );
      const [first] = await store.lease(node.id, 1, T0);
      await store.complete(node.id, first?.leaseId ?? "", OK, T0);
      expect(await store.stats(T0)).toMatchObject({
        batches: { active: 1, succeeded: 0 },
        batchItems: { queued: 2, succeeded: 1 },
        jobs: { queued: 2, succeeded: 1 },
      });
      await store.cancelBatch(batch.id, T0);
      expect(await store.stats(T0)).toMatchObject({
        batches: { active: 0, cancelled: 1 },
        batchItems: { queued: 0, succeeded: 1, cancelled: 2 },
      });
    });

    it("counts jobs by state", async () => {
      const store = await open(1);
      const node = await agent(store, "n");
      for (let i = 0; i < 6; i++) await submit(store);
      const [a, b, c, d] = await store.lease(node.id, 4, T0);
      if (!a || !b || !c || !d) throw new Error("expected four leases");
      await store.heartbeat(node.id, [b.leaseId], T0); // b: running
      await store.complete(node.id, c.leaseId, OK, T0);
      await store.complete(
        node.id,
        d.leaseId,
        { ...OK, ok: false, error: { code: "TIMEOUT", message: "t" } },
        T0,
      );
      await store.cancel(a.id, T0);
      expect((await store.stats(T0)).jobs).toEqual({
        queued: 2,
        leased: 0,
        running: 1,
        succeeded: 1,
        failed: 1,
        cancelled: 1,
      });
    });

    it("counts jobs finished in the trailing minute and hour, at their edges", async () => {
      const store = await open(1);
      const node = await agent(store, "n");
      // Finished 1 ms before T0, at T0, T0 + 30 s, T0 + 59 min (cancels finish too)…
      for (const offset of [-1, 0, 30_000, 59 * 60_000]) {
        await store.cancel((await submit(store)).id, T0 + offset);
      }
      await submit(store); // still queued: not finished
      const [leased] = await store.lease(node.id, 1, T0);
      if (!leased) throw new Error("expected a lease");
      const now = T0 + 60 * 60_000;
      // … and one at `now`, an hour after T0.
      await store.complete(node.id, leased.leaseId, OK, now);

      // Both windows include their start: the hour reaches back to T0, the minute to T0 + 59 min.
      expect((await store.stats(now)).finished).toEqual({ lastMinute: 2, lastHour: 4 });
      expect((await store.stats(now + 1)).finished).toEqual({ lastMinute: 1, lastHour: 3 });
    });

    it("counts nodes by state as listNodes shows them: silent past the TTL is lost", async () => {
      const store = await open(1);
      const a = await agent(store, "a");
      const b = await agent(store, "b");
      await agent(store, "c");
      await store.setAgentState(b.id, "draining", T0);
      await store.heartbeat(a.id, [], T0 + TTL);
      const now = T0 + TTL + 1;
      expect((await store.stats(now)).nodes).toEqual({ ready: 1, draining: 0, lost: 2 });
      const listed = (await store.listNodes(now)).map((node) => node.state).sort();
      expect(listed).toEqual(["lost", "lost", "ready"]);
      expect((await store.stats(T0)).nodes).toEqual({ ready: 2, draining: 1, lost: 0 });
    });
  });
}
