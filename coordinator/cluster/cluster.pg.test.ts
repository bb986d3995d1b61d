import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import postgres from "postgres";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Store } from "../store/interfaces.js";
import { usePostgresDatabase } from "../test-support/postgres.js";
import { ClusterNotifier, FLUSH_MS } from "./clusterNotifier.js";
import { electLeader, type Leadership } from "./leader.js";
import { openPgWakeChannel, WAKE_CHANNEL } from "./pgChannel.js";
import { MAX_PAYLOADS, parseWakeMessage } from "./wakeMessage.js";

// Real PostgreSQL (LISTEN/NOTIFY and the leaders table), two "coordinators"
// in this process; real processes are in test/cluster-wakeups.test.ts and
// test/faults/leader.test.ts.
const pg = usePostgresDatabase();
vi.setConfig({ testTimeout: 30_000, hookTimeout: 30_000 });
const silent = pino({ level: "silent" });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A coordinator's notifier on the test's database, listening. */
async function notifierOn(id: string): Promise<ClusterNotifier> {
  const channel = openPgWakeChannel(pg.url());
  const notifier = new ClusterNotifier(id, channel, silent);
  cleanups.push(async () => {
    notifier.close();
    await notifier.drained();
    await channel.close();
  });
  await notifier.listen();
  return notifier;
}

/** Every payload NOTIFYed on the wake channel from now on, as a LISTEN of the test's own sees it. */
async function countNotifies(): Promise<string[]> {
  const sql = postgres(pg.url(), { max: 1, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 5 }));
  const seen: string[] = [];
  await sql.listen(WAKE_CHANNEL, (payload) => seen.push(payload));
  return seen;
}

/** How long `wait` took: the waits below are 20 s, so only a wake ends them within 5 s. */
async function timed(wait: Promise<void>): Promise<number> {
  const started = Date.now();
  await wait;
  return Date.now() - started;
}

/** Waits for `check` (on a loaded machine a NOTIFY takes a while), then a while more for any extra. */
async function settle(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check() && Date.now() < deadline) await sleep(10);
  await sleep(FLUSH_MS * 15);
}

describe("ClusterNotifier on PostgreSQL", () => {
  it("a wake on one coordinator reaches the other's waiters: work, a job's end, an agent's slots", async () => {
    const a = await notifierOn("a");
    const b = await notifierOn("b");
    const work = timed(b.waitForWork(20_000));
    a.workAvailable(1);
    expect(await work).toBeLessThan(5_000);

    const job = timed(b.waitForJob("j_1", 20_000));
    const batch = timed(b.waitForBatch("b_1", 20_000));
    a.jobFinished("j_1");
    a.batchProgress("b_1");
    expect(await job).toBeLessThan(5_000);
    expect(await batch).toBeLessThan(5_000);

    // An agent's own lease waiter: slotsFreed(agent) on the other coordinator.
    const own = timed(b.waitForWork(20_000, undefined, "a_1"));
    a.slotsFreed("a_1");
    expect(await own).toBeLessThan(5_000);
  });

  it("listens again by itself after its connection is cut, and wakes its waiters then (they may have missed wakes)", async () => {
    const a = await notifierOn("a");
    const b = await notifierOn("b");
    const waiting = timed(b.waitForJob("j_missed", 20_000));
    const admin = postgres(pg.url(), { max: 1, onnotice: () => {} });
    cleanups.push(() => admin.end({ timeout: 5 }));
    // Every wake connection of this database: both notifiers' LISTEN and NOTIFY connections.
    const cut = await admin.unsafe(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE application_name = 'labrun-coordinator-wake' AND datname = current_database()`,
    );
    expect(cut.length).toBeGreaterThanOrEqual(2);
    expect(await waiting).toBeLessThan(10_000);
    // And wakes flow again, over the new connections.
    const work = timed(b.waitForWork(20_000));
    a.workAvailable(1);
    expect(await work).toBeLessThan(5_000);
  });

  it("skips its own messages, and never sends on what it applied", async () => {
    const a = await notifierOn("a");
    const b = await notifierOn("b");
    const seen = await countNotifies();
    a.workAvailable(1);
    a.jobFinished("j_1");
    await settle(() => seen.length >= 1 && b.counts.applied >= 1);
    expect(seen).toHaveLength(1);
    expect(b.counts.applied).toBe(1);
    expect(a.counts.applied).toBe(0);
    expect(b.counts.published).toBe(0);
  });

  it("coalesces: a thousand wakes within one flush are one NOTIFY", async () => {
    const a = await notifierOn("a");
    const b = await notifierOn("b");
    const seen = await countNotifies();
    const waits = [b.waitForJob("j_0", 20_000), b.waitForWork(20_000)];
    for (let i = 0; i < 1_000; i++) a.workAvailable(1);
    for (let i = 0; i < 100; i++) a.jobFinished(`j_${i}`);
    await Promise.all(waits);
    await settle(() => seen.length >= 1);
    expect(seen).toHaveLength(1);
    expect(parseWakeMessage(seen[0] ?? "")).toMatchObject({ from: "a", work: 1_000 });
    expect(parseWakeMessage(seen[0] ?? "")?.finished).toHaveLength(100);
  });

  it("splits only past the payload limit, and a flood of ids wakes everything once", async () => {
    const a = await notifierOn("a");
    const b = await notifierOn("b");
    const seen = await countNotifies();
    const id = (i: number) => `j_${String(i).padStart(22, "0")}`;
    for (let i = 0; i < 600; i++) a.jobFinished(id(i));
    await settle(() => seen.flatMap((p) => parseWakeMessage(p)?.finished ?? []).length >= 600);
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.length).toBeLessThanOrEqual(MAX_PAYLOADS);
    expect(seen.flatMap((p) => parseWakeMessage(p)?.finished ?? [])).toHaveLength(600);

    seen.length = 0;
    // Nobody on a names this job: "everything" wakes its reader on b all the same.
    const unnamed = timed(b.waitForJob("j_unnamed", 20_000));
    for (let i = 0; i < 5_000; i++) a.jobFinished(id(i));
    expect(await unnamed).toBeLessThan(5_000);
    await settle(() => seen.length >= 1);
    expect(seen.map((p) => parseWakeMessage(p))).toEqual([{ from: "a", everything: true }]);
  });
});

/** A store whose leadership renewals hang while `frozen` (a coordinator stopped mid-call). */
function freezable(store: Store) {
  const state = { frozen: false };
  const wrapped: Store = {
    ...store,
    holdLeadership: (name, holder, ttlMs) =>
      state.frozen ? new Promise(() => {}) : store.holdLeadership(name, holder, ttlMs),
  };
  return { store: wrapped, state };
}

describe("electLeader on PostgreSQL", () => {
  const TTL = 1_500;
  const elect = (store: Store, holder: string): Leadership => {
    const leadership = electLeader({ store, holder, ttlMs: TTL, logger: silent });
    cleanups.push(() => leadership.stop());
    return leadership;
  };
  const until = async (what: string, check: () => boolean, ms: number): Promise<number> => {
    const started = Date.now();
    while (!check()) {
      if (Date.now() - started > ms) throw new Error(`not within ${ms} ms: ${what}`);
      await sleep(10);
    }
    return Date.now() - started;
  };

  it("elects exactly one of two; when the leader gives up, the other takes over at its next renewal", async () => {
    const schema = await pg.newSchema();
    const a = elect(await pg.openStore(schema), "a");
    await until("a leads", () => a.isLeader(), 5_000);
    const b = elect(await pg.openStore(schema), "b");
    await sleep(TTL);
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    await a.stop();
    expect(a.isLeader()).toBe(false);
    // Released: b takes it at its next renewal (every TTL/3), not when the row would expire.
    expect(await until("b leads", () => b.isLeader(), TTL)).toBeLessThan(TTL / 3 + 400);
  });

  it("a frozen leader steps down within its TTL, the other takes over within 2× TTL, and the old one stays down when it wakes", async () => {
    const schema = await pg.newSchema();
    const first = freezable(await pg.openStore(schema));
    const a = elect(first.store, "a");
    await until("a leads", () => a.isLeader(), 5_000);
    const b = elect(await pg.openStore(schema), "b");
    await sleep(TTL / 2);
    first.state.frozen = true;
    const frozenAt = Date.now();
    await until("a steps down", () => !a.isLeader(), TTL);
    expect(b.isLeader()).toBe(false);
    await until("b leads", () => b.isLeader(), 2 * TTL);
    expect(Date.now() - frozenAt).toBeLessThan(2 * TTL);
    // Never both at once, from here on: a's next renewals are refused.
    first.state.frozen = false;
    for (let i = 0; i < 20; i++) {
      expect([a.isLeader(), b.isLeader()]).toEqual([false, true]);
      await sleep(TTL / 10);
    }
  });
});
