import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../protocol/index.js";
import { run, startTestCluster, type TestCluster } from "../helpers/cluster.js";
import { HOSTILE } from "./programs.js";

// Two agents with 3 slots each: hostile and benign jobs share them.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [3, 3] });
});
afterAll(async () => {
  await cluster?.close();
});

const BENIGN = `exports.main = async (n) => { await new Promise((r) => setTimeout(r, 100)); return n * 2; };`;

describe("hostile programs are contained", () => {
  it("gives every hostile program its exact code in time, while benign jobs still succeed", async () => {
    // The agents run in this process: its RSS bounds theirs. A program that
    // prints without end must not grow it (output is read through bounded buffers).
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const hostile = HOSTILE.map(async (program) => {
      const started = Date.now();
      const job = await run(cluster.client, program.source, {
        ...(program.filename ? { filename: program.filename } : {}),
        ...(program.limits ? { limits: program.limits } : {}),
      });
      return { program, job, ms: Date.now() - started };
    });
    const benign = Array.from({ length: 12 }, (_, n) => run(cluster.client, BENIGN, { input: n }));
    const [hostileDone, benignDone] = await Promise.all([
      Promise.all(hostile),
      Promise.all(benign),
    ]);

    benignDone.forEach((job, n) => {
      expect(job.outcome, `benign job ${n}`).toMatchObject({ ok: true, result: n * 2 });
    });
    const table: string[] = [];
    for (const { program, job, ms } of hostileDone) {
      const outcome = job.outcome;
      const code = outcome?.ok ? "ok" : outcome?.error.code;
      const ranMs = outcome?.stats.durationMs ?? Number.NaN;
      table.push(
        `${program.name.padEnd(72)} ${String(code).padEnd(17)} ran ${ranMs} ms, ${ms} ms from submit`,
      );
      expect.soft(code, program.name).toBe(program.expect);
      // Within its limit + 2 s of reaching the runner (time queued or booting is not the program's).
      const limitMs = program.limits?.timeoutMs ?? DEFAULT_LIMITS.timeoutMs;
      if (outcome) expect.soft(ranMs, program.name).toBeLessThanOrEqual(limitMs + 2_000);
      program.check?.({
        ...(outcome?.ok ? { result: outcome.result } : { message: outcome?.error.message }),
        logs: outcome?.logs ?? "",
      });
    }
    clearInterval(sampler);
    const grewMb = Math.round((peak - baseline) / 2 ** 20);
    table.push(`test process RSS grew by at most ${grewMb} MB (2 agents + coordinator)`);
    if (process.env.LABRUN_HOSTILE_TABLE) console.log(table.join("\n"));
    expect(grewMb).toBeLessThan(150);
  }, 180_000);

  it("rejects a 10 MB program and a 100 MB input at submit with 413, queueing nothing", async () => {
    const before = (await cluster.client.list({ limit: 500 })).jobs.length;
    for (const body of [
      { source: `exports.main = () => 1; //${"x".repeat(10 * 1024 * 1024)}` },
      { source: "exports.main = (i) => i.length;", input: "z".repeat(100 * 1024 * 1024) },
    ]) {
      const response = await fetch(`${cluster.url}/v1/jobs`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${cluster.tokens.client}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      expect(response.status).toBe(413);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        "PAYLOAD_TOO_LARGE",
      );
    }
    expect((await cluster.client.list({ limit: 500 })).jobs.length).toBe(before);
  });

  it("keeps the agents answering heartbeats and leaves no container behind", async () => {
    const nodes = await cluster.admin.nodes();
    expect(nodes.map((node) => node.state)).toEqual(["ready", "ready"]);
    expect(await cluster.leftoverContainers()).toEqual([]);
  });
});
