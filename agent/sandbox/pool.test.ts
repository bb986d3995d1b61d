import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { WarmPool } from "./pool.js";
import type { BootedContainer } from "./run.js";

const silent = pino({ level: "silent" });

/** Stands in for a booted container: only what the pool looks at. */
type Fake = BootedContainer & { id: number; dead: boolean; die(): void };

function fakeContainer(id: number): Fake {
  let exit = () => {};
  const exited = new Promise<void>((resolve) => {
    exit = resolve;
  });
  const fake = {
    id,
    dead: false,
    bootedAt: Date.now(),
    whenExited: () => exited,
    die() {
      fake.dead = true;
      exit();
    },
  };
  Object.defineProperty(fake, "hasExited", { get: () => fake.dead });
  return fake as unknown as Fake;
}

function harness(options: { size: number; maxIdleMs?: number; failFirst?: number }) {
  let booted = 0;
  let attempts = 0;
  const retired: number[] = [];
  const pool = new WarmPool(
    async () => {
      attempts += 1;
      if (attempts <= (options.failFirst ?? 0)) throw new Error("docker is down");
      booted += 1;
      return fakeContainer(booted);
    },
    { size: options.size, maxIdleMs: options.maxIdleMs ?? 60_000 },
    (container) => retired.push((container as unknown as { id: number }).id),
    silent,
  );
  return {
    pool,
    retired,
    get attempts() {
      return attempts;
    },
  };
}

/** Lets the pool's boot promises settle. */
const settle = () => vi.advanceTimersByTimeAsync(0);

describe("WarmPool", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fills up to its size and hands each container out once", async () => {
    const { pool } = harness({ size: 3 });
    pool.start();
    await settle();
    expect(pool.stats).toEqual({ idle: 3, booting: 0 });
    const ids = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const taken = pool.take() as unknown as { id: number };
      ids.add(taken.id);
    }
    expect(ids.size).toBe(3);
    await settle();
    // Refilled with new containers, never the ones handed out.
    const next = pool.take() as unknown as { id: number };
    expect(ids.has(next.id)).toBe(false);
    await pool.close();
  });

  it("answers undefined when empty so the caller boots cold, and is off at size 0", async () => {
    const off = harness({ size: 0 });
    off.pool.start();
    await settle();
    expect(off.pool.take()).toBeUndefined();
    expect(off.attempts).toBe(0);
  });

  it("backs off while booting fails, then refills", async () => {
    const h = harness({ size: 2, failFirst: 3 });
    h.pool.start();
    await settle();
    // The first boot failed: a retry timer, not a busy loop.
    expect(h.attempts).toBe(1);
    expect(h.pool.stats.idle).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.pool.stats).toEqual({ idle: 2, booting: 0 });
    expect(h.attempts).toBeLessThanOrEqual(6);
    await h.pool.close();
  });

  it("skips and retires a container that died while idle", async () => {
    const h = harness({ size: 2 });
    h.pool.start();
    await settle();
    const first = h.pool.take() as unknown as { id: number; dead: boolean };
    expect(first.id).toBe(1);
    await settle();
    // Container 2 dies while waiting: take() retires it and hands out the next live one.
    expect(h.pool.stats.idle).toBe(2);
    const waiting = (h.pool as unknown as { idle: Array<{ id: number; dead: boolean }> }).idle;
    const second = waiting[0];
    if (!second) throw new Error("the pool should hold container 2");
    second.dead = true;
    const taken = h.pool.take() as unknown as { id: number };
    expect(taken.id).toBe(3);
    expect(h.retired).toEqual([2]);
    await h.pool.close();
  });

  it("replaces a container the moment it dies while idle", async () => {
    const h = harness({ size: 2 });
    h.pool.start();
    await settle();
    (h.pool as unknown as { idle: Fake[] }).idle[1]?.die();
    await settle();
    expect(h.retired).toEqual([2]);
    expect(h.pool.stats).toEqual({ idle: 2, booting: 0 });
    expect((h.pool.take() as unknown as Fake).id).toBe(1);
    expect((h.pool.take() as unknown as Fake).id).toBe(3);
    await h.pool.close();
  });

  it("replaces containers idle for longer than maxIdleMs", async () => {
    const h = harness({ size: 2, maxIdleMs: 5_000 });
    h.pool.start();
    await settle();
    await vi.advanceTimersByTimeAsync(8_000);
    expect(h.retired.sort()).toEqual([1, 2]);
    expect(h.pool.stats.idle).toBe(2);
    await h.pool.close();
  });

  it("retires every idle container on close and stops refilling", async () => {
    const h = harness({ size: 3 });
    h.pool.start();
    await settle();
    await h.pool.close();
    expect(h.retired.sort()).toEqual([1, 2, 3]);
    expect(h.pool.take()).toBeUndefined();
    await settle();
    expect(h.attempts).toBe(3);
  });
});
