import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, Job } from "../../../protocol/index.js";
import { NODE_LOST_MESSAGE } from "../expireLeases.js";
import type { Store } from "../interfaces.js";
import { agentSpec, codeOf, FAILED, inOrder, OK, T0, TTL } from "./fixtures.js";
import type { SuiteContext } from "./types.js";

const submit = (store: Store, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1", filename: "main.js" }, now);

/** Single jobs, leases, heartbeats, results, expiry, cancel, listing, agents, reopening. */
export function jobSuite({ open, hooks }: SuiteContext): void {
  describe("enqueue and getJob", () => {
    it("queues a job with default limits merged with the requested ones", async () => {
      const store = await open();
      const job = await store.enqueue(
        { source: "x", filename: "prog.mjs", limits: { memoryMb: 64 }, labels: { team: "a" } },
        T0,
      );
      expect(Job.parse(job)).toEqual(job);
      expect(job).toEqual({
        id: job.id,
        state: "queued",
        attempts: 0,
        filename: "prog.mjs",
        runtime: "node",
        createdAt: new Date(T0).toISOString(),
        limits: { ...DEFAULT_LIMITS, memoryMb: 64 },
        labels: { team: "a" },
        owner: "default",
      });
      expect(job.id).toMatch(/^j_[A-Za-z0-9_-]{20}$/);
      // Read by id, a queued job no node can take says why.
      expect(await store.getJob(job.id)).toEqual({
        ...job,
        waiting: {
          reason: "no_node_fits",
          message: expect.stringContaining("no ready node offers the node runtime"),
          position: 1,
        },
      });
    });

    it("throws NOT_FOUND for an unknown job", async () => {
      const store = await open();
      expect(await codeOf(() => store.getJob("j_nope"))).toBe("NOT_FOUND");
    });
  });

  describe("retention", () => {
    it("deletes only terminal jobs that finished before the cutoff", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec(), "h", T0);
      const old = (await submit(store)).id;
      const running = (await submit(store)).id;
      const queued = (await submit(store)).id;
      const [oldLease, runningLease] = await store.lease(agent.id, 2, T0);
      await store.complete(
        agent.id,
        oldLease?.leaseId ?? "",
        { ok: true, result: 1, logs: "", stats: { durationMs: 1 } },
        T0 + 10,
      );
      expect(await store.pruneFinished(T0 + 5)).toBe(0); // finished after the cutoff: kept
      expect(await store.pruneFinished(T0 + 1_000)).toBe(1);
      expect(await codeOf(() => store.getJob(old))).toBe("NOT_FOUND");
      expect((await store.getJob(running)).state).toBe("leased");
      expect((await store.getJob(queued)).state).toBe("queued");
      expect(runningLease).toBeDefined();
    });
  });

  describe("lease, heartbeat, complete", () => {
    it("leases an agent only jobs within its largest limits; a bigger job waits for a bigger node", async () => {
      const store = await open();
      const big = (
        await store.enqueue({ source: "x", filename: "main.js", limits: { memoryMb: 4096 } }, T0)
      ).id;
      const small = (await submit(store)).id;
      const laptop = await store.registerAgent(
        { ...agentSpec("laptop"), maxLimits: { timeoutMs: 60_000, memoryMb: 1024, cpus: 2 } },
        "h-laptop",
        T0,
      );
      expect((await store.lease(laptop.id, 4, T0)).map((job) => job.id)).toEqual([small]);
      expect((await store.getJob(big)).state).toBe("queued");
      const server = await store.registerAgent(agentSpec("server"), "h-server", T0);
      expect((await store.lease(server.id, 4, T0)).map((job) => job.id)).toEqual([big]);
    });

    it("leases a python job only to an agent that offers python; until then it says why it waits", async () => {
      const store = await open();
      const python = await store.enqueue(
        { source: "def main(): return 1", filename: "prog.py" },
        T0,
      );
      expect(python).toMatchObject({ runtime: "python", filename: "prog.py" });
      const node = (await submit(store)).id;
      const older = await store.registerAgent(agentSpec("older"), "h-older", T0);
      const nodeOnly = await store.registerAgent(
        { ...agentSpec("n"), runtimes: ["node"] },
        "h-n",
        T0,
      );
      expect((await store.lease(older.id, 4, T0)).map((job) => job.id)).toEqual([node]);
      expect(await store.lease(nodeOnly.id, 4, T0)).toEqual([]);
      expect((await store.getJob(python.id, T0)).waiting).toMatchObject({
        reason: "no_node_fits",
        message: expect.stringMatching(/^no ready node offers the python runtime/),
      });
      const both = await store.registerAgent(
        { ...agentSpec("both"), runtimes: ["node", "python"] },
        "h-both",
        T0,
      );
      expect((await store.getJob(python.id, T0)).waiting?.reason).toBe("no_free_slot");
      const [leased] = await store.lease(both.id, 4, T0);
      expect(leased?.spec).toMatchObject({ runtime: "python", filename: "prog.py" });
      expect((await store.listNodes(T0)).find((n) => n.id === both.id)?.runtimes).toEqual([
        "node",
        "python",
      ]);
    });

    it("names a python job main.py when its client names no file", async () => {
      const store = await open();
      expect(await store.enqueue({ source: "x", runtime: "python" }, T0)).toMatchObject({
        runtime: "python",
        filename: "main.py",
      });
      expect(await store.enqueue({ source: "x" }, T0)).toMatchObject({
        runtime: "node",
        filename: "main.js",
      });
    });

    it("holds back a job whose pids, /tmp, log or result limit is past the agent's maximum", async () => {
      const store = await open();
      const asks = [
        { pids: 512 },
        { tmpfsMb: 256 },
        { logBytes: 512 * 1024 },
        { resultBytes: 8 << 20 },
      ];
      const big = await inOrder(
        asks,
        async (limits) =>
          (await store.enqueue({ source: "x", filename: "main.js", limits }, T0)).id,
      );
      // Asks for less than the default 8 MiB result, which the laptop does not take.
      const small = (
        await store.enqueue(
          { source: "x", filename: "main.js", limits: { resultBytes: 1 << 20 } },
          T0,
        )
      ).id;
      const maxLimits = { pids: 256, tmpfsMb: 128, logBytes: 256 * 1024, resultBytes: 4 << 20 };
      const laptop = await store.registerAgent(
        { ...agentSpec("laptop"), maxLimits },
        "h-laptop",
        T0,
      );
      expect((await store.lease(laptop.id, 8, T0)).map((job) => job.id)).toEqual([small]);
      expect((await store.listNodes(T0)).find((node) => node.name === "laptop")?.maxLimits).toEqual(
        maxLimits,
      );
      const server = await store.registerAgent(agentSpec("server"), "h-server", T0);
      const leased = await store.lease(server.id, 8, T0);
      expect(leased.map((job) => job.id)).toEqual(big);
      expect(leased[0]?.spec.limits).toEqual({ ...DEFAULT_LIMITS, pids: 512 });
    });

    it("leases an agent with a capacity only what fits beside the jobs it holds", async () => {
      const store = await open();
      const job = async (memoryMb: number, cpus: number) =>
        (await store.enqueue({ source: "x", filename: "main.js", limits: { memoryMb, cpus } }, T0))
          .id;
      const [a, b, c, d] = [
        await job(256, 1),
        await job(256, 0.2),
        await job(128, 0.2),
        await job(64, 0.1),
      ];
      const agent = await store.registerAgent(
        { ...agentSpec("lab", 8), capacity: { memoryMb: 600, cpus: 1.3 } },
        "h-lab",
        T0,
      );
      // 256 + 256 fit; 128 more would be 640 MiB; 64 MiB and 0.1 CPU still fit (1.3 cores, not 1.2999…).
      const first = await store.lease(agent.id, 8, T0);
      expect(first.map((leased) => leased.id)).toEqual([a, b, d]);
      expect(await store.lease(agent.id, 8, T0)).toEqual([]);
      const done = first.find((leased) => leased.id === a);
      await store.complete(agent.id, done?.leaseId ?? "", OK, T0 + 10);
      expect((await store.lease(agent.id, 8, T0 + 10)).map((leased) => leased.id)).toEqual([c]);
      expect((await store.listNodes(T0 + 10))[0]).toMatchObject({
        capacity: { memoryMb: 600, cpus: 1.3 },
      });
    });

    it("does not let a job too big for an agent's whole capacity hold back one that fits", async () => {
      const store = await open();
      const job = async (cpus: number) =>
        (await store.enqueue({ source: "x", filename: "main.js", limits: { cpus } }, T0)).id;
      const [tooBig, fits] = [await job(2), await job(0.5)];
      const agent = await store.registerAgent(
        { ...agentSpec("small", 1), capacity: { cpus: 1 } },
        "h-small",
        T0,
      );
      expect((await store.lease(agent.id, 1, T0)).map((leased) => leased.id)).toEqual([fits]);
      expect((await store.getJob(tooBig)).state).toBe("queued");
    });

    it("leases the oldest queued jobs atomically, up to free", async () => {
      const store = await open();
      const ids = [(await submit(store)).id, (await submit(store)).id, (await submit(store)).id];
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const leased = await store.lease(agent.id, 2, T0 + 5);
      expect(leased.map((job) => job.id)).toEqual(ids.slice(0, 2));
      expect(leased[0]).toMatchObject({
        attempt: 1,
        spec: { source: "exports.main = () => 1", filename: "main.js", input: null },
      });
      expect(new Set(leased.map((job) => job.leaseId)).size).toBe(2);
      expect(await store.getJob(ids[0] ?? "")).toMatchObject({
        state: "leased",
        attempts: 1,
        node: "node-1",
      });
      expect((await store.getJob(ids[2] ?? "")).state).toBe("queued");
      expect(await store.lease(agent.id, 0, T0)).toEqual([]);
    });

    it("never leases more than the agent's slots hold", async () => {
      const store = await open();
      for (let i = 0; i < 5; i++) await submit(store);
      const agent = await store.registerAgent(agentSpec("small", 2), "hash", T0);
      expect(await store.lease(agent.id, 5, T0)).toHaveLength(2);
      expect(await store.lease(agent.id, 5, T0)).toEqual([]);
    });

    it("marks a job running with startedAt on the first heartbeat and renews its lease", async () => {
      const store = await open();
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [leased] = await store.lease(agent.id, 1, T0);
      expect((await store.getJob(id)).startedAt).toBeUndefined();
      expect(await store.heartbeat(agent.id, [leased?.leaseId ?? ""], T0 + 400)).toEqual([]);
      expect(await store.getJob(id)).toMatchObject({
        state: "running",
        startedAt: new Date(T0 + 400).toISOString(),
      });
      // Renewed at +400, +800, +1200: never expires while heartbeats come.
      for (const now of [T0 + 800, T0 + 1200]) {
        await store.heartbeat(agent.id, [leased?.leaseId ?? ""], now);
        expect(await store.expireLeases(now + TTL - 1)).toEqual({
          requeued: [],
          failed: [],
          batches: [],
        });
      }
      expect((await store.getJob(id)).startedAt).toBe(new Date(T0 + 400).toISOString());
    });

    it("answers a heartbeat with the leases the agent must stop", async () => {
      const store = await open();
      await submit(store);
      const a = await store.registerAgent(agentSpec("a"), "hash-a", T0);
      const b = await store.registerAgent(agentSpec("b"), "hash-b", T0);
      const [leased] = await store.lease(a.id, 1, T0);
      const leaseId = leased?.leaseId ?? "";
      expect(await store.heartbeat(a.id, [leaseId, "l_unknown"], T0)).toEqual(["l_unknown"]);
      // Another agent cannot renew (or learn about) a's lease.
      expect(await store.heartbeat(b.id, [leaseId], T0)).toEqual([leaseId]);
    });

    it("completes the current lease: succeeded or failed from outcome.ok", async () => {
      const store = await open();
      const first = await submit(store);
      const second = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [l1, l2] = await store.lease(agent.id, 2, T0);
      const done = await store.complete(agent.id, l1?.leaseId ?? "", OK, T0 + 50);
      expect(done.changed).toBe(true);
      expect(done.value).toMatchObject({
        id: first.id,
        state: "succeeded",
        outcome: OK,
        // Finished before any heartbeat: started when it was leased.
        startedAt: new Date(T0).toISOString(),
        finishedAt: new Date(T0 + 50).toISOString(),
      });
      expect(
        (await store.complete(agent.id, l2?.leaseId ?? "", FAILED, T0 + 60)).value,
      ).toMatchObject({
        id: second.id,
        state: "failed",
        outcome: FAILED,
      });
    });

    it("accepts a duplicate result for the applied lease once, changing nothing", async () => {
      const store = await open();
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [leased] = await store.lease(agent.id, 1, T0);
      await store.complete(agent.id, leased?.leaseId ?? "", OK, T0 + 10);
      const before = await store.getJob(id);
      const again = await store.complete(agent.id, leased?.leaseId ?? "", FAILED, T0 + 20);
      expect(again).toEqual({ value: before, changed: false });
      expect(await store.getJob(id)).toEqual(before);
    });

    it("refuses a result for an unknown lease or another agent's lease with STALE_LEASE", async () => {
      const store = await open();
      const { id } = await submit(store);
      const owner = await store.registerAgent(agentSpec("owner"), "hash-o", T0);
      const other = await store.registerAgent(agentSpec("other"), "hash-x", T0);
      const [leased] = await store.lease(owner.id, 1, T0);
      expect(await codeOf(() => store.complete(owner.id, "l_unknown", OK, T0))).toBe("STALE_LEASE");
      expect(await codeOf(() => store.complete(other.id, leased?.leaseId ?? "", OK, T0))).toBe(
        "STALE_LEASE",
      );
      expect((await store.getJob(id)).state).toBe("leased");
    });
  });

  describe("expireLeases", () => {
    it("requeues an expired lease with attempts + 1, then fails with NODE_LOST past maxAttempts", async () => {
      const store = await open(2);
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [first] = await store.lease(agent.id, 1, T0);
      expect(await store.expireLeases(T0 + TTL)).toEqual({ requeued: [], failed: [], batches: [] });
      expect(await store.expireLeases(T0 + TTL + 1)).toEqual({
        requeued: [id],
        failed: [],
        batches: [],
      });
      const requeued = await store.getJob(id);
      expect(requeued).toMatchObject({ state: "queued", attempts: 1 });
      expect(requeued.node).toBeUndefined();
      // The old lease is dead: its result is stale, its heartbeat says stop.
      expect(await codeOf(() => store.complete(agent.id, first?.leaseId ?? "", OK, T0))).toBe(
        "STALE_LEASE",
      );
      expect(await store.heartbeat(agent.id, [first?.leaseId ?? ""], T0)).toEqual([first?.leaseId]);

      const [second] = await store.lease(agent.id, 1, T0 + 2000);
      expect(second?.attempt).toBe(2);
      expect(await store.expireLeases(T0 + 2000 + TTL + 1)).toEqual({
        requeued: [],
        failed: [id],
        batches: [],
      });
      const lost = await store.getJob(id);
      expect(lost).toMatchObject({ state: "failed", attempts: 2, node: "node-1" });
      expect(lost.outcome).toMatchObject({
        ok: false,
        error: { code: "NODE_LOST", message: NODE_LOST_MESSAGE },
      });
      expect(await codeOf(() => store.complete(agent.id, second?.leaseId ?? "", OK, T0))).toBe(
        "STALE_LEASE",
      );
    });
  });

  describe("cancel", () => {
    it("cancels a queued job at once; it is never leased", async () => {
      const store = await open();
      const { id } = await submit(store);
      const { value, changed } = await store.cancel(id, T0 + 5);
      expect(changed).toBe(true);
      expect(value).toMatchObject({
        state: "cancelled",
        outcome: { ok: false, error: { code: "CANCELLED", message: "cancelled by a client" } },
      });
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      expect(await store.lease(agent.id, 1, T0 + 10)).toEqual([]);
    });

    it("cancels a running job at once; its agent is told on heartbeat and its result refused", async () => {
      const store = await open();
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [leased] = await store.lease(agent.id, 1, T0);
      const leaseId = leased?.leaseId ?? "";
      await store.heartbeat(agent.id, [leaseId], T0 + 100);
      const cancelled = (await store.cancel(id, T0 + 600)).value;
      expect(cancelled).toMatchObject({
        state: "cancelled",
        outcome: { error: { code: "CANCELLED" }, logs: "", stats: { durationMs: 500 } },
      });
      expect(await store.heartbeat(agent.id, [leaseId], T0 + 700)).toEqual([leaseId]);
      expect(await codeOf(() => store.complete(agent.id, leaseId, OK, T0 + 800))).toBe(
        "STALE_LEASE",
      );
      // Not requeued by the sweeper either.
      expect(await store.expireLeases(T0 + 10 * TTL)).toEqual({
        requeued: [],
        failed: [],
        batches: [],
      });
      expect(await store.getJob(id)).toEqual(cancelled);
    });

    it("returns a terminal job unchanged", async () => {
      const store = await open();
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      const [leased] = await store.lease(agent.id, 1, T0);
      const done = (await store.complete(agent.id, leased?.leaseId ?? "", OK, T0 + 1)).value;
      expect(await store.cancel(id, T0 + 2)).toEqual({ value: done, changed: false });
    });
  });

  describe("listJobs", () => {
    it("pages newest first with an opaque cursor, and filters by state", async () => {
      const store = await open();
      const ids = await inOrder([0, 1, 2, 3, 4], async (i) => (await submit(store, T0 + i)).id);
      const first = await store.listJobs({ limit: 2 });
      expect(first.jobs.map((job) => job.id)).toEqual([ids[4], ids[3]]);
      const second = await store.listJobs({ limit: 2, cursor: first.nextCursor });
      expect(second.jobs.map((job) => job.id)).toEqual([ids[2], ids[1]]);
      const last = await store.listJobs({ limit: 2, cursor: second.nextCursor });
      expect(last.jobs.map((job) => job.id)).toEqual([ids[0]]);
      expect(last.nextCursor).toBeUndefined();

      await store.cancel(ids[1] ?? "", T0);
      await store.cancel(ids[3] ?? "", T0);
      const cancelled = await store.listJobs({ state: "cancelled", limit: 1 });
      expect(cancelled.jobs.map((job) => job.id)).toEqual([ids[3]]);
      const next = await store.listJobs({
        state: "cancelled",
        limit: 1,
        cursor: cancelled.nextCursor,
      });
      expect(next.jobs.map((job) => job.id)).toEqual([ids[1]]);
      expect(await codeOf(() => store.listJobs({ limit: 1, cursor: "garbage" }))).toBe(
        "VALIDATION_ERROR",
      );
    });
  });

  describe("agents and nodes", () => {
    it("finds an agent by its token hash only", async () => {
      const store = await open();
      const agent = await store.registerAgent(agentSpec("n"), "hash-1", T0);
      expect(await store.agentByTokenHash("hash-1")).toEqual(agent);
      expect(await store.agentByTokenHash("hash-2")).toBeUndefined();
      // The same name again is a new agent.
      expect((await store.registerAgent(agentSpec("n"), "hash-2", T0)).id).not.toBe(agent.id);
    });

    it("lists nodes with slots, running, done and failed counts, lost after the TTL", async () => {
      const store = await open();
      for (let i = 0; i < 3; i++) await submit(store);
      const agent = await store.registerAgent(agentSpec("busy", 3), "hash", T0);
      const [a, b] = await store.lease(agent.id, 2, T0);
      await store.complete(agent.id, a?.leaseId ?? "", OK, T0 + 10);
      await store.heartbeat(agent.id, [b?.leaseId ?? ""], T0 + 100);
      expect(await store.listNodes(T0 + 100 + TTL)).toMatchObject([
        {
          id: agent.id,
          name: "busy",
          hostname: "lab-1",
          state: "ready",
          slots: 3,
          running: 1,
          jobsDone: 1,
          jobsFailed: 0,
          lastHeartbeatAt: new Date(T0 + 100).toISOString(),
        },
      ]);
      expect((await store.listNodes(T0 + 100 + TTL + 1))[0]?.state).toBe("lost");
    });

    it("gives a draining agent no leases until it resumes", async () => {
      const store = await open();
      await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      expect((await store.setAgentState(agent.id, "draining", T0)).state).toBe("draining");
      expect(await store.lease(agent.id, 1, T0)).toEqual([]);
      expect((await store.setAgentState(agent.id, "ready", T0)).state).toBe("ready");
      expect(await store.lease(agent.id, 1, T0)).toHaveLength(1);
      expect(await codeOf(() => store.setAgentState("a_nope", "ready", T0))).toBe("NOT_FOUND");
    });

    it("forgets a removed agent and queues its jobs again at once", async () => {
      const store = await open();
      const { id } = await submit(store);
      const agent = await store.registerAgent(agentSpec(), "hash", T0);
      await store.lease(agent.id, 1, T0);
      expect(await store.removeAgent(agent.id, T0 + 1)).toEqual({
        requeued: [id],
        failed: [],
        batches: [],
      });
      expect(await store.agentByTokenHash("hash")).toBeUndefined();
      expect(await store.listNodes(T0)).toEqual([]);
      expect((await store.getJob(id)).state).toBe("queued");
    });
  });

  describe("durability", () => {
    it("keeps jobs across closing and reopening", async () => {
      const first = await open();
      const { id } = await submit(first);
      await first.close();
      const second = await hooks(first).reopen();
      expect((await second.getJob(id)).state).toBe("queued");
    });
  });
}
