import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type NewBatch, UserInfo } from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import type { Store } from "../interfaces.js";
import { agentSpec, codeOf, FAILED, inOrder, OK, T0, TTL } from "./fixtures.js";
import type { SuiteContext } from "./types.js";

const HOUR = 3_600_000;

const job = async (store: Store, owner: string, now = T0) =>
  (await store.enqueue({ source: "exports.main = () => 1" }, now, owner)).id;

const batchOf = (count: number): NewBatch => ({
  spec: { source: "exports.main = (n) => n", filename: "main.js", retries: 0, isolate: false },
  inputs: Array.from({ length: count }, (_, index) => JSON.stringify(index)),
});

const userOf = async (store: Store, name: string, now = T0) =>
  (await store.listUsers(now)).find((user) => user.name === name);

/** Owners of the jobs an agent is leased, in the order they were dealt. */
const ownersOf = (store: Store, ids: string[]) =>
  Promise.all(ids.map(async (id) => (await store.getJob(id)).owner));

/**
 * Users (issue 17) through the verbs: tokens, removal, the counts and usage
 * the store keeps whichever verb moves a job, fair share in the lease, the
 * max-queued quota, why a queued job waits, the audit log. The formula
 * itself and a property test on the raw rows are SQLite-only
 * (users-sqlite-only.test.ts).
 */
export function userSuite({ open, hooks }: SuiteContext): void {
  describe("users", () => {
    it("starts with `default`, who owns every job submitted without an owner", async () => {
      const store = await open();
      const id = (await store.enqueue({ source: "x" }, T0)).id;
      expect((await store.getJob(id)).owner).toBe("default");
      expect((await store.listUsers(T0)).map((user) => user.name)).toEqual(["default"]);
      expect(await userOf(store, "default")).toMatchObject({ queued: 1, running: 0 });
    });

    it("adds a user once, finds them by token hash, lists them with quotas in force", async () => {
      const store = await open(2, { defaultMaxQueued: 100 });
      await store.addUser({ name: "alice", maxRunning: 3, weight: 2 }, "hash-a", T0);
      expect(await codeOf(() => store.addUser({ name: "alice" }, "hash-b", T0))).toBe("CONFLICT");
      expect(await store.userByTokenHash("hash-a")).toEqual({ name: "alice" });
      expect(await store.userByTokenHash("hash-b")).toBeUndefined();
      const alice = await userOf(store, "alice");
      expect(UserInfo.parse(alice)).toEqual(alice);
      expect(alice).toMatchObject({ weight: 2, maxRunning: 3, maxQueued: 100, usage: 0, share: 0 });
    });

    it("rotates a token: the old hash stops at once; `default` has none to rotate or remove", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "old", T0);
      await store.rotateUserToken("alice", "new");
      expect(await store.userByTokenHash("old")).toBeUndefined();
      expect(await store.userByTokenHash("new")).toEqual({ name: "alice" });
      expect(await codeOf(() => store.rotateUserToken("bob", "x"))).toBe("NOT_FOUND");
      expect(await codeOf(() => store.rotateUserToken("default", "x"))).toBe("CONFLICT");
      expect(await codeOf(() => store.removeUser("default", T0))).toBe("CONFLICT");
    });

    it("removes a user: token gone, queued work cancelled, running jobs finish and still count", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "h-a", T0);
      const agent = await store.registerAgent(agentSpec("n", 1), "h", T0);
      const running = await job(store, "alice");
      const queued = await job(store, "alice");
      const batch = await store.enqueueBatch(batchOf(3), DEFAULT_LIMITS, T0, "alice");
      const [lease] = await store.lease(agent.id, 1, T0);
      expect(lease?.id).toBe(running);

      const removed = await store.removeUser("alice", T0 + 10);
      expect(removed.running).toBe(1);
      expect(removed.cancelled).toHaveLength(4);
      expect(removed.cancelled).toContain(queued);
      expect(await store.userByTokenHash("h-a")).toBeUndefined();
      expect((await store.listUsers(T0)).map((user) => user.name)).toEqual(["default"]);
      expect((await store.getJob(queued)).state).toBe("cancelled");
      expect((await store.getBatch(batch.id)).state).toBe("cancelled");
      expect(await store.hasQueued()).toBe(false);
      // The running job finishes; its result is taken.
      expect((await store.complete(agent.id, lease?.leaseId ?? "", OK, T0 + 20)).value.state).toBe(
        "succeeded",
      );
      // Added again, the name starts with the counts it has (none running now).
      await store.addUser({ name: "alice" }, "h-a2", T0 + 30);
      expect(await userOf(store, "alice", T0 + 30)).toMatchObject({ running: 0, queued: 0 });
    });
  });

  describe("counts and usage, kept by the store whichever verb moves a job", () => {
    it("counts queued and running jobs through lease, heartbeat, complete, cancel and expiry", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "h-a", T0);
      const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
      for (let index = 0; index < 3; index++) await job(store, "alice");
      await store.enqueueBatch(batchOf(2), DEFAULT_LIMITS, T0, "alice");
      expect(await userOf(store, "alice")).toMatchObject({ queued: 5, running: 0 });
      const leases = await store.lease(agent.id, 4, T0);
      expect(await userOf(store, "alice")).toMatchObject({ queued: 1, running: 4 });
      await store.heartbeat(
        agent.id,
        leases.map((lease) => lease.leaseId),
        T0 + 100,
      );
      expect(await userOf(store, "alice", T0 + 100)).toMatchObject({ queued: 1, running: 4 });
      await store.complete(agent.id, leases[0]?.leaseId ?? "", OK, T0 + 1_000);
      await store.complete(agent.id, leases[1]?.leaseId ?? "", FAILED, T0 + 1_000);
      await store.cancel(leases[2]?.id ?? "", T0 + 1_000);
      expect(await userOf(store, "alice", T0 + 1_000)).toMatchObject({ queued: 1, running: 1 });
      // The last lease expires: queued again.
      await store.expireLeases(T0 + 100 + TTL + 1);
      expect(await userOf(store, "alice", T0 + 2_000)).toMatchObject({ queued: 2, running: 0 });
    });

    it("charges each run's container-seconds to its owner, and decays them by the half-life", async () => {
      const store = await open(2, { fairShareHalfLifeMs: HOUR });
      await store.addUser({ name: "alice" }, "h-a", T0);
      const agent = await store.registerAgent(agentSpec("n", 2), "h", T0);
      await job(store, "alice");
      await job(store, "alice");
      const [first, second] = await store.lease(agent.id, 2, T0);
      // Running jobs count as they run.
      expect((await userOf(store, "alice", T0 + 4_000))?.usage).toBeCloseTo(8);
      await store.complete(agent.id, first?.leaseId ?? "", OK, T0 + 4_000);
      await store.complete(agent.id, second?.leaseId ?? "", OK, T0 + 6_000);
      expect((await userOf(store, "alice", T0 + 6_000))?.usage).toBeCloseTo(10, 2);
      expect((await userOf(store, "alice", T0 + 6_000 + HOUR))?.usage).toBeCloseTo(5, 2);
      const shares = (await store.listUsers(T0 + 6_000)).map((user) => [user.name, user.share]);
      expect(shares).toEqual([
        ["alice", 1],
        ["default", 0],
      ]);
    });
  });

  describe("fair share in the lease", () => {
    it("gives the next job to the user with the lowest usage ÷ weight, then their oldest", async () => {
      const store = await open();
      for (const name of ["alice", "bob"]) await store.addUser({ name }, `h-${name}`, T0);
      const agent = await store.registerAgent(agentSpec("n", 2), "h", T0);
      const alice = await inOrder(Array.from({ length: 10 }), () => job(store, "alice"));
      // Alice runs two for 10 s: she has used 20 container-seconds.
      const first = await store.lease(agent.id, 2, T0);
      for (const lease of first) await store.complete(agent.id, lease.leaseId, OK, T0 + 10_000);
      const bob = [await job(store, "bob", T0 + 10_000), await job(store, "bob", T0 + 10_000)];
      const next = (await store.lease(agent.id, 2, T0 + 10_000)).map((lease) => lease.id);
      expect(next).toEqual(bob);
      expect(first.map((lease) => lease.id)).toEqual(alice.slice(0, 2));
    });

    it("alternates between users of equal usage, and weighs usage by weight", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "h-a", T0);
      await store.addUser({ name: "bob" }, "h-b", T0);
      const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
      for (let index = 0; index < 4; index++) await job(store, "alice");
      for (let index = 0; index < 4; index++) await job(store, "bob");
      const ids = (await store.lease(agent.id, 4, T0)).map((lease) => lease.id);
      expect(await ownersOf(store, ids)).toEqual(["alice", "bob", "alice", "bob"]);

      // Weight 3 against 1: three of carol's per one of dave's at equal usage.
      const other = await open();
      await other.addUser({ name: "carol", weight: 3 }, "h-c", T0);
      await other.addUser({ name: "dave" }, "h-d", T0);
      const node = await other.registerAgent(agentSpec("n", 8), "h", T0);
      for (let index = 0; index < 8; index++) await job(other, "carol");
      for (let index = 0; index < 8; index++) await job(other, "dave");
      const owners = await ownersOf(
        other,
        (await other.lease(node.id, 8, T0)).map((lease) => lease.id),
      );
      expect(owners.filter((owner) => owner === "carol")).toHaveLength(6);
    });

    it("round-robins a user's work across their batches and single jobs", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "h-a", T0);
      const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
      const big = await store.enqueueBatch(batchOf(100), DEFAULT_LIMITS, T0, "alice");
      const single = await job(store, "alice", T0 + 1);
      const ids = (await store.lease(agent.id, 2, T0 + 1)).map((lease) => lease.id);
      expect(ids).toContain(single);
      expect(
        (await Promise.all(ids.map((id) => store.getJob(id)))).filter(
          (job) => job.batchId === big.id,
        ),
      ).toHaveLength(1);
    });

    it("keeps a user at max-running queued while others' work runs, and says why", async () => {
      const store = await open(2, { defaultMaxRunning: 5 });
      await store.addUser({ name: "alice", maxRunning: 1 }, "h-a", T0);
      await store.addUser({ name: "bob" }, "h-b", T0);
      const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
      const alice = [await job(store, "alice"), await job(store, "alice")];
      const bob = [await job(store, "bob"), await job(store, "bob"), await job(store, "bob")];
      const ids = (await store.lease(agent.id, 4, T0)).map((lease) => lease.id);
      expect(ids.sort()).toEqual([alice[0], ...bob].sort());
      expect((await store.getJob(alice[1] ?? "", T0)).waiting).toMatchObject({
        reason: "user_max_running",
        position: 1,
      });
      expect((await userOf(store, "bob"))?.maxRunning).toBe(5);
    });
  });

  describe("the max-queued quota", () => {
    it("refuses a job or a batch past it with the numbers, and queues nothing", async () => {
      const store = await open(2, { defaultMaxQueued: 3 });
      await store.addUser({ name: "alice" }, "h-a", T0);
      await store.addUser({ name: "bob", maxQueued: 10 }, "h-b", T0);
      await job(store, "alice");
      await job(store, "alice");
      let refusal: unknown;
      try {
        await store.enqueueBatch(batchOf(2), DEFAULT_LIMITS, T0, "alice");
      } catch (error) {
        refusal = error;
      }
      expect(refusal).toBeInstanceOf(ApiError);
      expect(refusal).toMatchObject({
        code: "QUOTA_EXCEEDED",
        status: 429,
        details: { user: "alice", maxQueued: 3, queued: 2, submitted: 2 },
      });
      expect((await store.listBatches({ limit: 10 })).batches).toHaveLength(0);
      await job(store, "alice");
      expect(await codeOf(() => job(store, "alice"))).toBe("QUOTA_EXCEEDED");
      expect((await userOf(store, "alice"))?.queued).toBe(3);
      // Bob's own quota is above the lab's default.
      await store.enqueueBatch(batchOf(10), DEFAULT_LIMITS, T0, "bob");
    });
  });

  describe("why a queued job waits", () => {
    it("names no node, draining nodes, or busy slots, with its place among its user's work", async () => {
      const store = await open();
      await store.addUser({ name: "alice" }, "h-a", T0);
      const first = await job(store, "alice");
      const second = await job(store, "alice");
      const big = (
        await store.enqueue(
          { source: "x", limits: { ...DEFAULT_LIMITS, memoryMb: 4096 } },
          T0,
          "alice",
        )
      ).id;
      expect((await store.getJob(second, T0)).waiting).toMatchObject({
        reason: "no_node_fits",
        position: 2,
      });
      const agent = await store.registerAgent(
        { ...agentSpec("n", 1), maxLimits: { memoryMb: 1024 } },
        "h",
        T0,
      );
      expect((await store.getJob(second, T0)).waiting?.reason).toBe("no_free_slot");
      expect((await store.getJob(big, T0)).waiting?.reason).toBe("no_node_fits");
      await store.setAgentState(agent.id, "draining", T0);
      expect((await store.getJob(second, T0)).waiting?.reason).toBe("nodes_draining");
      await store.setAgentState(agent.id, "ready", T0);
      expect((await store.lease(agent.id, 1, T0)).map((lease) => lease.id)).toEqual([first]);
      expect((await store.getJob(second, T0)).waiting).toMatchObject({
        reason: "no_free_slot",
        position: 1,
      });
      // A node silent for longer than the TTL takes nothing.
      expect((await store.getJob(second, T0 + 2 * TTL)).waiting?.reason).toBe("no_node_fits");
    });
  });

  describe("the audit log", () => {
    it("keeps admin actions newest first, paged", async () => {
      const store = await open();
      await store.recordAudit({ actor: "admin", action: "user.add", target: "alice" }, T0);
      await store.recordAudit(
        { actor: "admin", action: "node.drain", target: "a_1", details: { name: "n" } },
        T0 + 1,
      );
      const page = await store.listAudit({ limit: 1 });
      expect(page.entries).toEqual([
        {
          at: new Date(T0 + 1).toISOString(),
          actor: "admin",
          action: "node.drain",
          target: "a_1",
          details: { name: "n" },
        },
      ]);
      const rest = await store.listAudit({ limit: 5, cursor: page.nextCursor });
      expect(rest.entries.map((entry) => entry.action)).toEqual(["user.add"]);
      expect(rest.nextCursor).toBeUndefined();
    });
  });

  describe("an existing store", () => {
    it("reopens with the same counts (the triggers are in the schema, the charge per connection)", async () => {
      const first = await open();
      await first.addUser({ name: "alice" }, "h-a", T0);
      await job(first, "alice");
      await first.close();
      const again = await hooks(first).reopen();
      expect((await userOf(again, "alice"))?.queued).toBe(1);
    });
  });
}
