import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [2, 2] });
});
afterAll(async () => {
  await cluster?.close();
});

describe("a cluster of two agents", () => {
  it("lists both nodes with their slots and running counts", async () => {
    const { id } = await cluster.client.submit({
      source: `exports.main = () => new Promise(r => setTimeout(() => r("slow"), 1500));`,
    });
    // While the slow job runs, one node reports it.
    let nodes = await cluster.admin.nodes();
    for (let i = 0; i < 30 && nodes.every((node) => node.running === 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      nodes = await cluster.admin.nodes();
    }
    const names = cluster.agents.map((agent) => agent.name).sort();
    expect(nodes.map((node) => node.name).sort()).toEqual(names);
    for (const node of nodes) {
      expect(node.slots).toBe(2);
      expect(node.state).toBe("ready");
    }
    expect(nodes.reduce((sum, node) => sum + node.running, 0)).toBe(1);
    const done = await cluster.client.wait(id);
    expect(done.outcome?.ok && done.outcome.result).toBe("slow");
  });

  it("runs 20 jobs to success and uses both agents", async () => {
    const source = `exports.main = async (n) => { await new Promise(r => setTimeout(r, 200)); return n * n; };`;
    const submitted = await Promise.all(
      Array.from({ length: 20 }, (_, n) => cluster.client.submit({ source, input: n })),
    );
    const jobs = await Promise.all(submitted.map(({ id }) => cluster.client.wait(id)));
    jobs.forEach((job, n) => {
      expect(job.state).toBe("succeeded");
      expect(job.outcome?.ok && job.outcome.result).toBe(n * n);
    });
    const usedNodes = new Set(jobs.map((job) => job.node));
    expect([...usedNodes].sort()).toEqual(cluster.agents.map((agent) => agent.name).sort());
    const nodes = await cluster.admin.nodes();
    expect(nodes.reduce((sum, node) => sum + node.jobsDone, 0)).toBeGreaterThanOrEqual(20);
  });

  it("leaves no job container behind", async () => {
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});
