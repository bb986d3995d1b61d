import { describe, expect, it } from "vitest";
import { Notifier } from "./notifier.js";

describe("Notifier", () => {
  it("wakes every lease waiter when a job is queued", async () => {
    const notifier = new Notifier();
    const started = Date.now();
    const waits = [notifier.waitForWork(10_000), notifier.waitForWork(10_000)];
    expect(notifier.waiting.lease).toBe(2);
    notifier.workAvailable();
    await Promise.all(waits);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(notifier.waiting.lease).toBe(0);
  });

  it("wakes at most `count` lease waiters, the longest-waiting first", async () => {
    const notifier = new Notifier();
    const woken: number[] = [];
    const waits = [1, 2, 3].map((n) =>
      notifier.waitForWork(10_000).then(() => {
        woken.push(n);
      }),
    );
    notifier.workAvailable(1);
    await waits[0];
    expect(woken).toEqual([1]);
    expect(notifier.waiting.lease).toBe(2);
    notifier.workAvailable(5);
    await Promise.all(waits);
    expect(woken).toEqual([1, 2, 3]);
  });

  it("wakes only the lease waiters of the agent whose slots were freed", async () => {
    const notifier = new Notifier();
    let otherWoken = false;
    const mine = notifier.waitForWork(10_000, undefined, "a_1");
    const other = notifier.waitForWork(10_000, undefined, "a_2").then(() => {
      otherWoken = true;
    });
    notifier.slotsFreed("a_1");
    await mine;
    expect(otherWoken).toBe(false);
    expect(notifier.waiting.lease).toBe(1);
    // An agent's waiter still wakes for queued work like any other.
    notifier.workAvailable();
    await other;
    expect(notifier.waiting.lease).toBe(0);
  });

  it("wakes only the readers of the job that finished", async () => {
    const notifier = new Notifier();
    let otherWoken = false;
    const mine = notifier.waitForJob("j_1", 10_000);
    const other = notifier.waitForJob("j_2", 10_000).then(() => {
      otherWoken = true;
    });
    notifier.jobFinished("j_1");
    await mine;
    expect(otherWoken).toBe(false);
    expect(notifier.waiting).toEqual({ lease: 0, jobs: 1 });
    notifier.jobFinished("j_2");
    await other;
    expect(notifier.waiting).toEqual({ lease: 0, jobs: 0 });
  });

  it("removes a waiter when its time is up", async () => {
    const notifier = new Notifier();
    await Promise.all([notifier.waitForWork(20), notifier.waitForJob("j_1", 20)]);
    expect(notifier.waiting).toEqual({ lease: 0, jobs: 0 });
  });

  it("removes a waiter when its request is aborted", async () => {
    const notifier = new Notifier();
    const abort = new AbortController();
    const waits = [
      notifier.waitForWork(10_000, abort.signal),
      notifier.waitForJob("j_1", 10_000, abort.signal),
    ];
    expect(notifier.waiting).toEqual({ lease: 1, jobs: 1 });
    abort.abort();
    await Promise.all(waits);
    expect(notifier.waiting).toEqual({ lease: 0, jobs: 0 });
    // Already aborted: no waiter is added at all.
    await notifier.waitForWork(10_000, abort.signal);
    expect(notifier.waiting.lease).toBe(0);
  });

  it("releases every waiter on close, and later waits return at once", async () => {
    const notifier = new Notifier();
    const waits = [notifier.waitForWork(10_000), notifier.waitForJob("j_1", 10_000)];
    notifier.close();
    await Promise.all(waits);
    expect(notifier.closed).toBe(true);
    await notifier.waitForWork(10_000);
    expect(notifier.waiting).toEqual({ lease: 0, jobs: 0 });
  });
});
