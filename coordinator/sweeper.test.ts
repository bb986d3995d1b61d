import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Notifier } from "./notifier.js";
import { openStore, type Store } from "./store/index.js";
import { startLeaseSweeper } from "./sweeper.js";

const T0 = 1_700_000_000_000;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function leasedJob() {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-sweeper-"));
  const store = openStore(dataDir, { leaseTtlMs: 1000, maxAttempts: 3 });
  cleanups.push(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const { id } = await store.enqueue({ source: "x", filename: "main.js" }, T0);
  const agent = await store.registerAgent(
    { name: "n", hostname: "h", slots: 1, version: "v", labels: {} },
    "hash",
    T0,
  );
  await store.lease(agent.id, 1, T0);
  return { store, id };
}

describe("startLeaseSweeper", () => {
  it("expires leases on its interval and wakes lease waiters", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    const notifier = new Notifier();
    const time = { now: T0 };
    const stop = startLeaseSweeper(store, notifier, pino({ level: "silent" }), 500, () => time.now);
    cleanups.push(stop);
    let woken = false;
    void notifier.waitForWork(60_000).then(() => {
      woken = true;
    });
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    time.now = T0 + 1001;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("queued");
    expect(woken).toBe(true);
  });

  it("wakes every lease waiter while a job sits queued (a bounded wake may have missed)", async () => {
    vi.useFakeTimers();
    const { store } = await leasedJob();
    await store.enqueue({ source: "y", filename: "main.js" }, T0);
    const notifier = new Notifier();
    const stop = startLeaseSweeper(store, notifier, pino({ level: "silent" }), 500, () => T0);
    cleanups.push(stop);
    const woken: number[] = [];
    for (const n of [1, 2]) {
      void notifier.waitForWork(60_000).then(() => {
        woken.push(n);
      });
    }
    await vi.advanceTimersByTimeAsync(500);
    expect(woken).toEqual([1, 2]);
  });

  it("gives live leases a full TTL when it starts, so a restart expires nothing at once", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    const notifier = new Notifier();
    // The coordinator comes back 5 s after the lease's deadline (TTL 1 s).
    const time = { now: T0 + 5_000 };
    const log = pino({ level: "silent" });
    const stop = startLeaseSweeper(store, notifier, log, 500, () => time.now, undefined, 1_000);
    cleanups.push(stop);
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    // Not renewed within the TTL after the restart: now it goes back to the queue.
    time.now += 1_001;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("queued");
  });

  it("gives live leases a full TTL after a tick that came far too late (a stalled process)", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    const time = { now: T0 };
    const log = pino({ level: "silent" });
    const stop = startLeaseSweeper(
      store,
      new Notifier(),
      log,
      500,
      () => time.now,
      undefined,
      1_000,
    );
    cleanups.push(stop);
    // SIGSTOP for 10 s: the next tick sees the clock 10 s on.
    time.now += 10_000;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    time.now += 500;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    time.now += 600;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("queued");
  });

  it("logs a failed sweep and keeps sweeping", async () => {
    vi.useFakeTimers();
    const { store } = await leasedJob();
    let calls = 0;
    const failingOnce: Store = {
      ...store,
      expireLeases: async (now) => {
        calls++;
        if (calls === 1) throw new Error("database is locked");
        return await store.expireLeases(now);
      },
    };
    const errors: unknown[] = [];
    const logger = pino({ level: "error" }, { write: (line: string) => errors.push(line) });
    const stop = startLeaseSweeper(failingOnce, new Notifier(), logger, 100, () => T0);
    cleanups.push(stop);
    await vi.advanceTimersByTimeAsync(300);
    expect(calls).toBe(3);
    expect(errors).toHaveLength(1);
  });
});

describe("startLeaseSweeper with several coordinators (isLeader)", () => {
  it("while another leads, expires nothing but still wakes its own lease waiters while jobs sit queued", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    await store.enqueue({ source: "y", filename: "main.js" }, T0);
    const notifier = new Notifier();
    const time = { now: T0 + 5_000 };
    const log = pino({ level: "silent" });
    const stop = startLeaseSweeper(
      store,
      notifier,
      log,
      500,
      () => time.now,
      undefined,
      1_000,
      () => false,
    );
    cleanups.push(stop);
    let woken = false;
    void notifier.waitForWork(60_000).then(() => {
      woken = true;
    });
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    expect(woken).toBe(true);
  });

  it("taking over after answering for longer than the TTL, it extends nothing: the dead leader's expired lease is requeued at once", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    const time = { now: T0 };
    const leader = { now: false };
    const log = pino({ level: "silent" });
    const stop = startLeaseSweeper(
      store,
      new Notifier(),
      log,
      500,
      () => time.now,
      undefined,
      1_000,
      () => leader.now,
    );
    cleanups.push(stop);
    // Ticks every 500 ms as a follower while the lease (deadline T0 + 1 s) runs out.
    for (let i = 0; i < 6; i++) {
      time.now += 500;
      await vi.advanceTimersByTimeAsync(500);
    }
    expect((await store.getJob(id)).state).toBe("leased");
    leader.now = true;
    time.now += 500;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("queued");
  });

  it("becoming the leader right after its start, it gives leases a full TTL from that start first", async () => {
    vi.useFakeTimers();
    const { store, id } = await leasedJob();
    // Started 5 s after the lease's deadline (a whole cluster restarted); elected 500 ms later.
    const time = { now: T0 + 5_000 };
    const leader = { now: false };
    const log = pino({ level: "silent" });
    const stop = startLeaseSweeper(
      store,
      new Notifier(),
      log,
      500,
      () => time.now,
      undefined,
      1_000,
      () => leader.now,
    );
    cleanups.push(stop);
    leader.now = true;
    time.now += 500;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("leased");
    // Not renewed within a TTL of the start: now it goes back to the queue.
    time.now += 501;
    await vi.advanceTimersByTimeAsync(500);
    expect((await store.getJob(id)).state).toBe("queued");
  });
});
