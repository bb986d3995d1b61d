// TEMPORARY: the SQLite store suites (store.test.ts, batches.test.ts,
// stats.test.ts) converted by hand to run against the PostgreSQL store, until
// the shared `describeStoreSuite(name, open)` lands; the lead replaces this
// file with that suite at merge. The tests that read SQLite's own files
// (WAL mode, user_version, EXPLAIN QUERY PLAN) are here in PostgreSQL's terms.
import { describe, expect, it, vi } from "vitest";
import {
  Batch,
  ClusterStats,
  DEFAULT_LIMITS,
  Job,
  LIMIT_NAMES,
  type NewBatch,
  type Outcome,
  SubmitBatchResponse,
} from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import { usePostgresDatabase } from "../../test-support/postgres.js";
import { agentSpec, FAILED, OK, T0, TTL } from "../../test-support/store-fixtures.js";
import { NODE_LOST_MESSAGE } from "../index.js";
import type { PostgresStore as Store } from "./index.js";
import { PG_LEASE_SQL } from "./lease.js";
import { PG_SCHEMA_VERSION } from "./migrations.js";
import { PG_STATS_SQL } from "./stats.js";

const pg = usePostgresDatabase();
// Real transactions on a shared 2-core machine: more time than a unit test's 5 s.
vi.setConfig({ testTimeout: 30_000 });

const open = (schema?: string, maxAttempts = 2) =>
  pg.openStore(schema, { leaseTtlMs: TTL, maxAttempts });
const openTestStore = open;
const openStats = async () => ({ store: await open(undefined, 1) });

/** The ApiError code a call rejects with. */
async function codeOf(call: () => unknown): Promise<string | undefined> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  return undefined;
}

const submit = (store: Store, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1", filename: "main.js" }, now);

const agent = (store: Store, name: string, now = T0) =>
  store.registerAgent(
    { name, hostname: "h", slots: 8, version: "v", labels: {} },
    `hash-${name}`,
    now,
  );

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

/** The batch of each leased job. */
async function batchesOf(store: Store, leased: { id: string }[]) {
  const ids: (string | undefined)[] = [];
  for (const job of leased) ids.push((await store.getJob(job.id)).batchId);
  return ids;
}

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
    });
    expect(job.id).toMatch(/^j_[A-Za-z0-9_-]{20}$/);
    // Read by id, a queued job no node can take says why.
    expect(await store.getJob(job.id)).toEqual({
      ...job,
      waiting: { reason: expect.stringContaining("no ready node offers the node runtime") },
    });
  });

  it("throws NOT_FOUND for an unknown job", async () => {
    expect(await codeOf(async () => (await open()).getJob("j_nope"))).toBe("NOT_FOUND");
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
    expect(await codeOf(async () => await store.getJob(old))).toBe("NOT_FOUND");
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
    const python = await store.enqueue({ source: "def main(): return 1", filename: "prog.py" }, T0);
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
    expect((await store.getJob(python.id, T0)).waiting?.reason).toMatch(
      /^no ready node offers the python runtime/,
    );
    const both = await store.registerAgent(
      { ...agentSpec("both"), runtimes: ["node", "python"] },
      "h-both",
      T0,
    );
    expect((await store.getJob(python.id, T0)).waiting).toBeUndefined();
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
    const big: string[] = [];
    for (const limits of asks) {
      big.push((await store.enqueue({ source: "x", filename: "main.js", limits }, T0)).id);
    }
    // Asks for less than the default 8 MiB result, which the laptop does not take.
    const small = (
      await store.enqueue(
        { source: "x", filename: "main.js", limits: { resultBytes: 1 << 20 } },
        T0,
      )
    ).id;
    const maxLimits = { pids: 256, tmpfsMb: 128, logBytes: 256 * 1024, resultBytes: 4 << 20 };
    const laptop = await store.registerAgent({ ...agentSpec("laptop"), maxLimits }, "h-laptop", T0);
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

  it("runs a job stored before the newer limits existed with their defaults", async () => {
    const schema = await pg.newSchema();
    const store = await open(schema);
    const { id } = await submit(store);
    await pg
      .connect(schema)
      .unsafe("UPDATE jobs SET limits = $1 WHERE id = $2", [
        JSON.stringify({ timeoutMs: 5000, memoryMb: 128, cpus: 1 }),
        id,
      ]);
    expect((await store.getJob(id)).limits).toEqual({
      ...DEFAULT_LIMITS,
      timeoutMs: 5000,
      memoryMb: 128,
    });
    const agent = await store.registerAgent(
      { ...agentSpec(), maxLimits: { pids: DEFAULT_LIMITS.pids, tmpfsMb: 64 } },
      "hash",
      T0,
    );
    const [leased] = await store.lease(agent.id, 1, T0);
    expect(leased?.spec.limits).toEqual({ ...DEFAULT_LIMITS, timeoutMs: 5000, memoryMb: 128 });
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
    expect(await codeOf(async () => await store.complete(owner.id, "l_unknown", OK, T0))).toBe(
      "STALE_LEASE",
    );
    expect(
      await codeOf(async () => await store.complete(other.id, leased?.leaseId ?? "", OK, T0)),
    ).toBe("STALE_LEASE");
    expect((await store.getJob(id)).state).toBe("leased");
  });
});

describe("expireLeases", () => {
  it("requeues an expired lease with attempts + 1, then fails with NODE_LOST past maxAttempts", async () => {
    const store = await open(undefined, 2);
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
    expect(
      await codeOf(async () => await store.complete(agent.id, first?.leaseId ?? "", OK, T0)),
    ).toBe("STALE_LEASE");
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
    expect(
      await codeOf(async () => await store.complete(agent.id, second?.leaseId ?? "", OK, T0)),
    ).toBe("STALE_LEASE");
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
    expect(await codeOf(async () => await store.complete(agent.id, leaseId, OK, T0 + 800))).toBe(
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
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submit(store, T0 + i)).id);
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
    expect(
      (
        await store.listJobs({ state: "cancelled", limit: 1, cursor: cancelled.nextCursor })
      ).jobs.map((job) => job.id),
    ).toEqual([ids[1]]);
    expect(await codeOf(async () => await store.listJobs({ limit: 1, cursor: "garbage" }))).toBe(
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
    expect(await codeOf(async () => await store.setAgentState("a_nope", "ready", T0))).toBe(
      "NOT_FOUND",
    );
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
});

describe("enqueueBatch and getBatch", () => {
  it("queues every item as a job of its own, with its batch and index", async () => {
    const store = await openTestStore();
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
    const [first] = await store.lease((await store.registerAgent(agentSpec(), "h", T0)).id, 1, T0);
    expect(first?.spec).toEqual({
      source: "exports.main = (n) => n",
      filename: "main.js",
      runtime: "node",
      input: 0,
      limits: DEFAULT_LIMITS,
    });
    expect(await store.getJob(first?.id ?? "")).toMatchObject({ batchId: answer.id, index: 0 });
  });

  it("leaves a batch's items out of the job list, which stays for single jobs", async () => {
    const store = await openTestStore();
    await enqueue(store, 5);
    const single = await store.enqueue({ source: "x", filename: "main.js" }, T0);
    expect((await store.listJobs({ limit: 50 })).jobs.map((job) => job.id)).toEqual([single.id]);
    expect((await store.listJobs({ state: "queued", limit: 50 })).jobs).toHaveLength(1);
  });

  it("lists batches newest first, page by page", async () => {
    const store = await openTestStore();
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
    const store = await openTestStore();
    expect(await codeOf(async () => await store.getBatch("b_nope"))).toBe("NOT_FOUND");
    expect(await codeOf(async () => await store.cancelBatch("b_nope", T0))).toBe("NOT_FOUND");
    expect(await codeOf(async () => await store.retryBatch("b_nope"))).toBe("NOT_FOUND");
    expect(
      await codeOf(async () => await store.batchResults("b_nope", { from: 0, order: "index" }, T0)),
    ).toBe("NOT_FOUND");
  });
});

describe("leasing a batch's items", () => {
  it("gives a single job queued after a big batch the next free slot (round-robin)", async () => {
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec("n", 2), "h", T0);
    await enqueue(store, 1_000);
    const [item] = await store.lease(agent.id, 1, T0);
    expect(item?.id).toMatch(/-0$/);
    const single = await store.enqueue({ source: "x", filename: "main.js" }, T0);
    const [next] = await store.lease(agent.id, 1, T0);
    expect(next?.id).toBe(single.id);
  });

  it("takes turns between two batches, one item each", async () => {
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec("n", 4), "h", T0);
    const a = (await enqueue(store, 10)).id;
    const b = (await enqueue(store, 10)).id;
    const leased = await batchesOf(store, await store.lease(agent.id, 4, T0));
    expect(leased.filter((id) => id === a)).toHaveLength(2);
    expect(leased.filter((id) => id === b)).toHaveLength(2);
  });

  it("fills every free slot from the batches that have items when others run short", async () => {
    // Each batch is first read for its share of the deal only; a short one
    // leaves its turns to the others, as if every batch had been read in full.
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec("n", 12), "h", T0);
    const short = (await enqueue(store, 1)).id;
    const a = (await enqueue(store, 50)).id;
    const b = (await enqueue(store, 50)).id;
    await store.enqueue({ source: "x", filename: "main.js" }, T0);
    const leased = await batchesOf(store, await store.lease(agent.id, 12, T0));
    expect(leased).toHaveLength(12);
    expect(leased.filter((id) => id === short)).toHaveLength(1);
    expect(leased.filter((id) => !id)).toHaveLength(1);
    expect(leased.filter((id) => id === a)).toHaveLength(5);
    expect(leased.filter((id) => id === b)).toHaveLength(5);
  });

  it("never runs more than maxParallel items of a batch at once, across agents", async () => {
    const store = await openTestStore();
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
    const store = await openTestStore();
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
    const store = await openTestStore();
    const small = await store.registerAgent(
      { ...agentSpec("small"), maxLimits: { memoryMb: 128 } },
      "h",
      T0,
    );
    await store.enqueueBatch(batchOf(2), { ...DEFAULT_LIMITS, memoryMb: 512 }, T0);
    expect(await store.lease(small.id, 4, T0)).toHaveLength(0);
  });

  it("finds a queued single job through its own index, never by scanning a batch's items", async () => {
    // A small table is read whole by the planner's choice; with sequential
    // scans priced out, the plan shows which index each statement can use.
    const schema = await pg.newSchema();
    const store = await openTestStore(schema);
    await enqueue(store, 10);
    const sql = pg.connect(schema);
    const plan = (text: string, params: unknown[]) =>
      sql.begin(async (tx) => {
        await tx.unsafe("SET LOCAL enable_seqscan = off");
        const rows = await tx.unsafe(`EXPLAIN ${text}`, params as never[]);
        return rows.map((row) => String(row["QUERY PLAN"])).join("; ");
      });
    const fits = [["node"], 4, ...LIMIT_NAMES.map((name) => DEFAULT_LIMITS[name])];
    const singles = await plan(PG_LEASE_SQL.singles, fits);
    // Either index of queued single jobs: both are in seq order, neither holds a batch's items.
    expect(singles).toMatch(/Index Scan using jobs_singles_(queued|by_state)/);
    expect(singles).not.toMatch(/Sort/);
    const items = await plan(PG_LEASE_SQL.items, ["b", 4]);
    expect(items).toMatch(/Index Scan using jobs_items_queued/);
    expect(items).not.toMatch(/Sort/);
  });
});

describe("a batch's results", () => {
  it("streams lines in index order, each once every item before it is done", async () => {
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec(), "h", T0);
    const { id } = await enqueue(store, 3);
    const [zero, one, two] = await store.lease(agent.id, 3, T0);
    const read = async (from: number) =>
      await store.batchResults(id, { from, order: "index" }, T0 + 5);
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
    const store = await openTestStore();
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
    const store = await openTestStore();
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
    expect(
      await codeOf(async () => await store.complete(agent.id, running?.leaseId ?? "", OK, T0 + 4)),
    ).toBe("STALE_LEASE");
    expect(await store.lease(agent.id, 2, T0 + 5)).toHaveLength(0);
    expect((await store.getJob(running?.id ?? "")).outcome).toMatchObject({
      ok: false,
      error: { code: "CANCELLED" },
    });
  });

  it("queues only the failed items again on retry, and the batch runs until they end", async () => {
    const store = await openTestStore();
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
      await codeOf(
        async () => await store.complete(agent.id, leases[1]?.leaseId ?? "", OK, T0 + 2),
      ),
    ).toBe("STALE_LEASE");
    await runAll(store, agent.id, T0 + 3);
    expect(await store.getBatch(id)).toMatchObject({
      state: "succeeded",
      counts: { succeeded: 3 },
    });
  });

  it("runs an item again after a program failure only while the batch's retries last", async () => {
    const store = await openTestStore();
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
    const store = await openTestStore(undefined, 2);
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
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec(), "h", T0);
    const job = await store.enqueue({ source: "x", filename: "main.js" }, T0);
    const [lease] = await store.lease(agent.id, 1, T0);
    await store.complete(agent.id, lease?.leaseId ?? "", failure("SANDBOX_ERROR"), T0 + 1);
    expect((await store.getJob(job.id)).state).toBe("failed");
  });

  it("fails an item with NODE_LOST after its last attempt, and the batch ends", async () => {
    const store = await openTestStore(undefined, 1);
    const agent = await store.registerAgent(agentSpec(), "h", T0);
    const { id } = await enqueue(store, 1);
    await store.lease(agent.id, 1, T0);
    expect((await store.expireLeases(T0 + TTL + 1)).failed).toHaveLength(1);
    expect(await store.getBatch(id)).toMatchObject({ state: "failed", counts: { failed: 1 } });
  });
});

describe("completeMany", () => {
  it("takes each result on its own in one call: a stale one refuses only itself", async () => {
    const store = await openTestStore();
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
});

describe("retention of batches", () => {
  it("deletes a finished batch with all its items, and never an item of a running one", async () => {
    const store = await openTestStore();
    const agent = await store.registerAgent(agentSpec(), "h", T0);
    const done = (await enqueue(store, 3)).id;
    await runAll(store, agent.id, T0 + 1);
    const running = (await enqueue(store, 2)).id;
    const [lease] = await store.lease(agent.id, 1, T0 + 2);
    await store.complete(agent.id, lease?.leaseId ?? "", OK, T0 + 2);
    while ((await store.pruneFinished(T0 + 1_000)) > 0);
    expect(await codeOf(async () => await store.getBatch(done))).toBe("NOT_FOUND");
    expect(await codeOf(async () => await store.getJob(`j${done.slice(1)}-0`))).toBe("NOT_FOUND");
    expect((await store.getBatch(running)).counts).toMatchObject({ succeeded: 1, queued: 1 });
  });
});

describe("stats", () => {
  it("counts nothing in an empty store, in the protocol's shape", async () => {
    const { store } = await openStats();
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
    const { store } = await openStats();
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
    const { store } = await openStats();
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
    const { store } = await openStats();
    const node = await agent(store, "n");
    // Finished 1 ms before T0, at T0, T0 + 30 s, T0 + 59 min (cancels finish too)…
    for (const offset of [-1, 0, 30_000, 59 * 60_000])
      await store.cancel((await submit(store)).id, T0 + offset);
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
    const { store } = await openStats();
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

  it("answers from indexes, never reading job rows (programs can be 1 MiB each)", async () => {
    const schema = await pg.newSchema();
    const store = await openTestStore(schema);
    // Rows of both kinds, so the planner weighs real indexes rather than an empty table.
    await enqueue(store, 300);
    for (let i = 0; i < 30; i++) await submit(store);
    const sql = pg.connect(schema);
    // An index-only scan needs the visibility map that (auto)vacuum keeps.
    await sql.unsafe("VACUUM ANALYZE jobs");
    const plan = (text: string, params: unknown[] = []) =>
      sql.begin(async (tx) => {
        await tx.unsafe("SET LOCAL enable_seqscan = off");
        await tx.unsafe("SET LOCAL enable_bitmapscan = off");
        const rows = await tx.unsafe(`EXPLAIN ${text}`, params as never[]);
        return rows.map((row) => String(row["QUERY PLAN"])).join("; ");
      });
    expect(await plan(PG_STATS_SQL.jobsByState)).toMatch(/Index Only Scan using jobs_by_state/);
    expect(await plan(PG_STATS_SQL.itemsByState)).toMatch(
      /Index Only Scan using jobs_by_batch_state/,
    );
    expect(await plan(PG_STATS_SQL.finishedSince, [0, 0])).toMatch(
      /Index Only Scan using jobs_by_finished/,
    );
  });
});
