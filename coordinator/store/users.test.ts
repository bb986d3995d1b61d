import { join } from "node:path";
import Database from "better-sqlite3";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type NewBatch, type Outcome, UserInfo } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import {
  agentSpec,
  codeOf,
  FAILED,
  OK,
  onCleanup,
  T0,
  TTL,
  tempDir,
} from "../test-support/store-fixtures.js";
import { charged, decayed, fairOrder, usageNow } from "./fairShare.js";
import { openStore, type Store, type StoreSettings } from "./index.js";

const HOUR = 3_600_000;

function open(settings: Partial<StoreSettings> = {}, dataDir = tempDir()): Store {
  const store = openStore(dataDir, { leaseTtlMs: TTL, maxAttempts: 2, ...settings });
  onCleanup(() => {
    try {
      store.close();
    } catch {
      // closed by the test already
    }
  });
  return store;
}

const job = (store: Store, owner: string, now = T0) =>
  store.enqueue({ source: "exports.main = () => 1" }, now, owner).id;

const batchOf = (count: number): NewBatch => ({
  spec: { source: "exports.main = (n) => n", filename: "main.js", retries: 0, isolate: false },
  inputs: Array.from({ length: count }, (_, index) => JSON.stringify(index)),
});

const userOf = (store: Store, name: string, now = T0) =>
  store.listUsers(now).find((user) => user.name === name);

/** Owners of the jobs an agent is leased, in the order they were dealt. */
const ownersOf = (store: Store, ids: string[]) => ids.map((id) => store.getJob(id).owner);

describe("the fair-share formula", () => {
  it("halves usage every half-life and never grows it backwards in time", () => {
    expect(decayed(100, T0, T0 + HOUR, HOUR)).toBeCloseTo(50);
    expect(decayed(100, T0, T0 + 2 * HOUR, HOUR)).toBeCloseTo(25);
    expect(decayed(100, T0, T0 - HOUR, HOUR)).toBe(100);
  });

  it("charges a run ended at `at`: the old usage decayed to then, plus the run", () => {
    expect(charged(100, T0, T0 + HOUR, 10, HOUR)).toBeCloseTo(60);
    // A run that ended before the last charge is decayed to it instead.
    expect(charged(100, T0 + HOUR, T0, 10, HOUR)).toBeCloseTo(105);
  });

  it("counts running jobs in full for the time they have run", () => {
    const row = { weight: 2, running: 2, running_since: 2 * T0, usage: 0, usage_at: T0 };
    expect(usageNow(row, T0 + 5_000, HOUR)).toBeCloseTo(10);
  });

  it("orders by usage ÷ weight, then running ÷ weight, then name", () => {
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

describe("users", () => {
  it("starts with `default`, who owns every job submitted without an owner", () => {
    const store = open();
    const id = store.enqueue({ source: "x" }, T0).id;
    expect(store.getJob(id).owner).toBe("default");
    expect(store.listUsers(T0).map((user) => user.name)).toEqual(["default"]);
    expect(userOf(store, "default")).toMatchObject({ queued: 1, running: 0 });
  });

  it("adds a user once, finds them by token hash, lists them with quotas in force", () => {
    const store = open({ defaultMaxQueued: 100 });
    store.addUser({ name: "alice", maxRunning: 3, weight: 2 }, "hash-a", T0);
    expect(codeOf(() => store.addUser({ name: "alice" }, "hash-b", T0))).toBe("CONFLICT");
    expect(store.userByTokenHash("hash-a")).toEqual({ name: "alice" });
    expect(store.userByTokenHash("hash-b")).toBeUndefined();
    const alice = userOf(store, "alice");
    expect(UserInfo.parse(alice)).toEqual(alice);
    expect(alice).toMatchObject({ weight: 2, maxRunning: 3, maxQueued: 100, usage: 0, share: 0 });
  });

  it("rotates a token: the old hash stops at once; `default` has none to rotate or remove", () => {
    const store = open();
    store.addUser({ name: "alice" }, "old", T0);
    store.rotateUserToken("alice", "new");
    expect(store.userByTokenHash("old")).toBeUndefined();
    expect(store.userByTokenHash("new")).toEqual({ name: "alice" });
    expect(codeOf(() => store.rotateUserToken("bob", "x"))).toBe("NOT_FOUND");
    expect(codeOf(() => store.rotateUserToken("default", "x"))).toBe("CONFLICT");
    expect(codeOf(() => store.removeUser("default", T0))).toBe("CONFLICT");
  });

  it("removes a user: token gone, queued work cancelled, running jobs finish and still count", () => {
    const store = open();
    store.addUser({ name: "alice" }, "h-a", T0);
    const agent = store.registerAgent(agentSpec("n", 1), "h", T0);
    const running = job(store, "alice");
    const queued = job(store, "alice");
    const batch = store.enqueueBatch(batchOf(3), DEFAULT_LIMITS, T0, "alice");
    const [lease] = store.lease(agent.id, 1, T0);
    expect(lease?.id).toBe(running);

    const removed = store.removeUser("alice", T0 + 10);
    expect(removed.running).toBe(1);
    expect(removed.cancelled).toHaveLength(4);
    expect(removed.cancelled).toContain(queued);
    expect(store.userByTokenHash("h-a")).toBeUndefined();
    expect(store.listUsers(T0).map((user) => user.name)).toEqual(["default"]);
    expect(store.getJob(queued).state).toBe("cancelled");
    expect(store.getBatch(batch.id).state).toBe("cancelled");
    expect(store.hasQueued()).toBe(false);
    // The running job finishes; its result is taken.
    expect(store.complete(agent.id, lease?.leaseId ?? "", OK, T0 + 20).value.state).toBe(
      "succeeded",
    );
    // Added again, the name starts with the counts it has (none running now).
    store.addUser({ name: "alice" }, "h-a2", T0 + 30);
    expect(userOf(store, "alice", T0 + 30)).toMatchObject({ running: 0, queued: 0 });
  });
});

describe("counts and usage, kept by the store whichever verb moves a job", () => {
  it("counts queued and running jobs through lease, heartbeat, complete, cancel and expiry", () => {
    const store = open();
    store.addUser({ name: "alice" }, "h-a", T0);
    const agent = store.registerAgent(agentSpec("n", 4), "h", T0);
    for (let index = 0; index < 3; index++) job(store, "alice");
    store.enqueueBatch(batchOf(2), DEFAULT_LIMITS, T0, "alice");
    expect(userOf(store, "alice")).toMatchObject({ queued: 5, running: 0 });
    const leases = store.lease(agent.id, 4, T0);
    expect(userOf(store, "alice")).toMatchObject({ queued: 1, running: 4 });
    store.heartbeat(
      agent.id,
      leases.map((lease) => lease.leaseId),
      T0 + 100,
    );
    expect(userOf(store, "alice", T0 + 100)).toMatchObject({ queued: 1, running: 4 });
    store.complete(agent.id, leases[0]?.leaseId ?? "", OK, T0 + 1_000);
    store.complete(agent.id, leases[1]?.leaseId ?? "", FAILED, T0 + 1_000);
    store.cancel(leases[2]?.id ?? "", T0 + 1_000);
    expect(userOf(store, "alice", T0 + 1_000)).toMatchObject({ queued: 1, running: 1 });
    // The last lease expires: queued again.
    store.expireLeases(T0 + 100 + TTL + 1);
    expect(userOf(store, "alice", T0 + 2_000)).toMatchObject({ queued: 2, running: 0 });
  });

  it("charges each run's container-seconds to its owner, and decays them by the half-life", () => {
    const store = open({ fairShareHalfLifeMs: HOUR });
    store.addUser({ name: "alice" }, "h-a", T0);
    const agent = store.registerAgent(agentSpec("n", 2), "h", T0);
    job(store, "alice");
    job(store, "alice");
    const [first, second] = store.lease(agent.id, 2, T0);
    // Running jobs count as they run.
    expect(userOf(store, "alice", T0 + 4_000)?.usage).toBeCloseTo(8);
    store.complete(agent.id, first?.leaseId ?? "", OK, T0 + 4_000);
    store.complete(agent.id, second?.leaseId ?? "", OK, T0 + 6_000);
    expect(userOf(store, "alice", T0 + 6_000)?.usage).toBeCloseTo(10, 2);
    expect(userOf(store, "alice", T0 + 6_000 + HOUR)?.usage).toBeCloseTo(5, 2);
    const shares = store.listUsers(T0 + 6_000).map((user) => [user.name, user.share]);
    expect(shares).toEqual([
      ["alice", 1],
      ["default", 0],
    ]);
  });
});

describe("fair share in the lease", () => {
  it("gives the next job to the user with the lowest usage ÷ weight, then their oldest", () => {
    const store = open();
    for (const name of ["alice", "bob"]) store.addUser({ name }, `h-${name}`, T0);
    const agent = store.registerAgent(agentSpec("n", 2), "h", T0);
    const alice = Array.from({ length: 10 }, () => job(store, "alice"));
    // Alice runs two for 10 s: she has used 20 container-seconds.
    const first = store.lease(agent.id, 2, T0);
    for (const lease of first) store.complete(agent.id, lease.leaseId, OK, T0 + 10_000);
    const bob = [job(store, "bob", T0 + 10_000), job(store, "bob", T0 + 10_000)];
    const next = store.lease(agent.id, 2, T0 + 10_000).map((lease) => lease.id);
    expect(next).toEqual(bob);
    expect(first.map((lease) => lease.id)).toEqual(alice.slice(0, 2));
  });

  it("alternates between users of equal usage, and weighs usage by weight", () => {
    const store = open();
    store.addUser({ name: "alice" }, "h-a", T0);
    store.addUser({ name: "bob" }, "h-b", T0);
    const agent = store.registerAgent(agentSpec("n", 4), "h", T0);
    for (let index = 0; index < 4; index++) job(store, "alice");
    for (let index = 0; index < 4; index++) job(store, "bob");
    const ids = store.lease(agent.id, 4, T0).map((lease) => lease.id);
    expect(ownersOf(store, ids)).toEqual(["alice", "bob", "alice", "bob"]);

    // Weight 3 against 1: three of carol's per one of dave's at equal usage.
    const other = open();
    other.addUser({ name: "carol", weight: 3 }, "h-c", T0);
    other.addUser({ name: "dave" }, "h-d", T0);
    const node = other.registerAgent(agentSpec("n", 8), "h", T0);
    for (let index = 0; index < 8; index++) job(other, "carol");
    for (let index = 0; index < 8; index++) job(other, "dave");
    const owners = ownersOf(
      other,
      other.lease(node.id, 8, T0).map((lease) => lease.id),
    );
    expect(owners.filter((owner) => owner === "carol")).toHaveLength(6);
  });

  it("round-robins a user's work across their batches and single jobs", () => {
    const store = open();
    store.addUser({ name: "alice" }, "h-a", T0);
    const agent = store.registerAgent(agentSpec("n", 4), "h", T0);
    const big = store.enqueueBatch(batchOf(100), DEFAULT_LIMITS, T0, "alice");
    const single = job(store, "alice", T0 + 1);
    const ids = store.lease(agent.id, 2, T0 + 1).map((lease) => lease.id);
    expect(ids).toContain(single);
    expect(ids.filter((id) => store.getJob(id).batchId === big.id)).toHaveLength(1);
  });

  it("keeps a user at max-running queued while others' work runs, and says why", () => {
    const store = open({ defaultMaxRunning: 5 });
    store.addUser({ name: "alice", maxRunning: 1 }, "h-a", T0);
    store.addUser({ name: "bob" }, "h-b", T0);
    const agent = store.registerAgent(agentSpec("n", 4), "h", T0);
    const alice = [job(store, "alice"), job(store, "alice")];
    const bob = [job(store, "bob"), job(store, "bob"), job(store, "bob")];
    const ids = store.lease(agent.id, 4, T0).map((lease) => lease.id);
    expect(ids.sort()).toEqual([alice[0], ...bob].sort());
    expect(store.getJob(alice[1] ?? "", T0).waiting).toMatchObject({
      reason: "user_max_running",
      position: 1,
    });
    expect(userOf(store, "bob")?.maxRunning).toBe(5);
  });
});

describe("the max-queued quota", () => {
  it("refuses a job or a batch past it with the numbers, and queues nothing", () => {
    const store = open({ defaultMaxQueued: 3 });
    store.addUser({ name: "alice" }, "h-a", T0);
    store.addUser({ name: "bob", maxQueued: 10 }, "h-b", T0);
    job(store, "alice");
    job(store, "alice");
    let refusal: unknown;
    try {
      store.enqueueBatch(batchOf(2), DEFAULT_LIMITS, T0, "alice");
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ApiError);
    expect(refusal).toMatchObject({
      code: "QUOTA_EXCEEDED",
      status: 429,
      details: { user: "alice", maxQueued: 3, queued: 2, submitted: 2 },
    });
    expect(store.listBatches({ limit: 10 }).batches).toHaveLength(0);
    job(store, "alice");
    expect(codeOf(() => job(store, "alice"))).toBe("QUOTA_EXCEEDED");
    expect(userOf(store, "alice")?.queued).toBe(3);
    // Bob's own quota is above the lab's default.
    store.enqueueBatch(batchOf(10), DEFAULT_LIMITS, T0, "bob");
  });
});

describe("why a queued job waits", () => {
  it("names no node, draining nodes, or busy slots, with its place among its user's work", () => {
    const store = open();
    store.addUser({ name: "alice" }, "h-a", T0);
    const first = job(store, "alice");
    const second = job(store, "alice");
    const big = store.enqueue(
      { source: "x", limits: { ...DEFAULT_LIMITS, memoryMb: 4096 } },
      T0,
      "alice",
    ).id;
    expect(store.getJob(second, T0).waiting).toMatchObject({
      reason: "no_node_fits",
      position: 2,
    });
    const agent = store.registerAgent(
      { ...agentSpec("n", 1), maxLimits: { memoryMb: 1024 } },
      "h",
      T0,
    );
    expect(store.getJob(second, T0).waiting?.reason).toBe("no_free_slot");
    expect(store.getJob(big, T0).waiting?.reason).toBe("no_node_fits");
    store.setAgentState(agent.id, "draining", T0);
    expect(store.getJob(second, T0).waiting?.reason).toBe("nodes_draining");
    store.setAgentState(agent.id, "ready", T0);
    expect(store.lease(agent.id, 1, T0).map((lease) => lease.id)).toEqual([first]);
    expect(store.getJob(second, T0).waiting).toMatchObject({
      reason: "no_free_slot",
      position: 1,
    });
    // A node silent for longer than the TTL takes nothing.
    expect(store.getJob(second, T0 + 2 * TTL).waiting?.reason).toBe("no_node_fits");
  });
});

describe("the audit log", () => {
  it("keeps admin actions newest first, paged", () => {
    const store = open();
    store.recordAudit({ actor: "admin", action: "user.add", target: "alice" }, T0);
    store.recordAudit(
      { actor: "admin", action: "node.drain", target: "a_1", details: { name: "n" } },
      T0 + 1,
    );
    const page = store.listAudit({ limit: 1 });
    expect(page.entries).toEqual([
      {
        at: new Date(T0 + 1).toISOString(),
        actor: "admin",
        action: "node.drain",
        target: "a_1",
        details: { name: "n" },
      },
    ]);
    const rest = store.listAudit({ limit: 5, cursor: page.nextCursor });
    expect(rest.entries.map((entry) => entry.action)).toEqual(["user.add"]);
    expect(rest.nextCursor).toBeUndefined();
  });
});

describe("an existing data dir", () => {
  it("reopens with the same counts (the triggers are in the schema, the charge per connection)", () => {
    const dataDir = tempDir();
    const first = open({}, dataDir);
    first.addUser({ name: "alice" }, "h-a", T0);
    job(first, "alice");
    first.close();
    const again = open({}, dataDir);
    expect(userOf(again, "alice")?.queued).toBe(1);
  });
});

describe("the counts the lease reads", () => {
  it("always equal the jobs' own states, whatever sequence of verbs ran", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(9), fc.nat(1_000)), { minLength: 1, maxLength: 60 }),
        (steps) => {
          const dataDir = tempDir();
          const store = open({}, dataDir);
          const db = new Database(join(dataDir, "labrun.db"), { readonly: true });
          onCleanup(() => db.close());
          store.addUser({ name: "alice" }, "h-a", T0);
          const agent = store.registerAgent(agentSpec("n", 3), "h", T0);
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
              if (verb === 0) job(store, owner, now);
              else if (verb === 1) {
                batches.push(store.enqueueBatch(batchOf(3), DEFAULT_LIMITS, now, owner).id);
              } else if (verb === 2) {
                leases.push(...store.lease(agent.id, 1 + (pick % 3), now).map((l) => l.leaseId));
              } else if (verb === 3) store.heartbeat(agent.id, leases, now);
              else if (verb === 4 && leases.length > 0) {
                const leaseId = leases.splice(pick % leases.length, 1)[0] ?? "";
                const outcome = [OK, FAILED, sandboxFailed][pick % 3] ?? OK;
                store.completeMany(agent.id, [{ leaseId, outcome }], now);
              } else if (verb === 5) {
                const queued = store.listJobs({ limit: 5 }).jobs[pick % 5];
                if (queued) store.cancel(queued.id, now);
              } else if (verb === 6 && batches.length > 0) {
                store.cancelBatch(batches[pick % batches.length] ?? "", now);
              } else if (verb === 7 && batches.length > 0) {
                store.retryBatch(batches[pick % batches.length] ?? "");
              } else if (verb === 8) {
                store.expireLeases(now + TTL + 1);
                now += TTL + 1;
              } else if (verb === 9) store.pruneFinished(now);
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
          store.close();
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});
