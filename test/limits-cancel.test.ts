import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, startTestCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [2] });
});
afterAll(async () => {
  await cluster?.close();
});

describe.concurrent("limits enforced from outside the container", () => {
  it("stops while(true){} at a 1 s timeout with TIMEOUT within 3 s of its start", async () => {
    const job = await run(cluster.client, `exports.main = () => { while (true) {} };`, {
      limits: { timeoutMs: 1000 },
    });
    expect(job.state).toBe("failed");
    expect(job.outcome?.ok === false && job.outcome.error.code).toBe("TIMEOUT");
    // Measured by the agent from the moment the runner got the job (queueing
    // and container boot are not the program's time).
    expect(job.outcome?.stats.durationMs).toBeGreaterThanOrEqual(1000);
    expect(job.outcome?.stats.durationMs).toBeLessThan(3000);
  });

  it("reports a memory bomb over --memory as OUT_OF_MEMORY (the kernel's OOM kill)", async () => {
    const job = await run(
      cluster.client,
      `exports.main = () => { const keep = []; for (;;) keep.push(Buffer.alloc(1 << 20, 1)); };`,
      { limits: { memoryMb: 64, timeoutMs: 20_000 } },
    );
    expect(job.outcome).toMatchObject({ ok: false, error: { code: "OUT_OF_MEMORY" } });
    expect(job.outcome?.stats.exitCode).toBe(137);
  });

  it("lets a job that runs for 2.5 s finish with its result", async () => {
    // Regression: waiting on the container before it had started answered at
    // once, so long-running jobs were cut short with a bogus RUNTIME_ERROR.
    const job = await run(
      cluster.client,
      `exports.main = () => new Promise((resolve) => setTimeout(() => resolve("done"), 2500));`,
    );
    expect(job.outcome).toMatchObject({ ok: true, result: "done" });
    // The agent's clock starts when it sees the runner's ready marker; a cold
    // runner already has the job on stdin then and starts it at once, so on
    // a loaded machine the clock may start a few ms after the program did.
    expect(job.outcome?.stats.durationMs).toBeGreaterThanOrEqual(2400);
  });

  it("cancels a running job: CANCELLED, and its container is gone", async () => {
    const { id } = await cluster.client.submit({
      source: `exports.main = () => new Promise(() => setInterval(() => {}, 1000));`,
      limits: { timeoutMs: 60_000 },
    });
    // Wait until an agent really runs it.
    for (let i = 0; i < 100; i++) {
      const job = await cluster.client.get(id);
      if (job.state === "running") break;
      await sleep(100);
    }
    const cancelled = await cluster.client.cancel(id);
    expect(cancelled.state).toBe("cancelled");
    expect(cancelled.outcome?.ok === false && cancelled.outcome.error.code).toBe("CANCELLED");
    const final = await cluster.client.wait(id, { timeoutMs: 5000 });
    expect(final.state).toBe("cancelled");
    // The agent learns of the cancel on its next heartbeat and kills the container.
    let left: string[] = [];
    for (let i = 0; i < 50; i++) {
      left = await cluster.leftoverContainers();
      if (left.length === 0) break;
      await sleep(100);
    }
    expect(left).toEqual([]);
  });
});

describe("container hygiene", () => {
  it("leaves no job container behind", async () => {
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});
