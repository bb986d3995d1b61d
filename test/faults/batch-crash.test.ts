import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labrun } from "../helpers/cli.js";
import { ProcessCluster, waitFor } from "./helpers/processes.js";

// Batches under faults: kill -9 of the coordinator while `labrun map`
// streams (the CLI picks the stream up again), and kill -9 of an agent
// mid-batch (its items run again elsewhere, each ends exactly once).
const ITEMS = 40;
const PROGRAM = `exports.main = async (n) => { await new Promise((r) => setTimeout(r, 150)); return n * 2; };`;

let cluster: ProcessCluster;
let dir: string;
beforeAll(async () => {
  cluster = await ProcessCluster.start("b");
  await cluster.startAgent("a", { slots: 2 });
  await cluster.startAgent("b", { slots: 2 });
  dir = mkdtempSync(join(tmpdir(), "labrun-batch-faults-"));
  writeFileSync(join(dir, "double.js"), PROGRAM);
  writeFileSync(
    join(dir, "inputs.jsonl"),
    `${Array.from({ length: ITEMS }, (_, n) => JSON.stringify(n)).join("\n")}\n`,
  );
});
afterAll(async () => {
  await cluster?.close();
});

const env = () => ({
  LABRUN_SERVER: cluster.url,
  LABRUN_TOKEN: cluster.tokens.client,
  LABRUN_CONFIG: join(dir, "no-config.json"),
  LABRUN_DATA_DIR: join(dir, "no-data"),
});

/** The newest batch's items done so far. */
async function doneOfNewest(): Promise<number> {
  const [batch] = (await cluster.client.listBatches({ limit: 1 }).catch(() => ({ batches: [] })))
    .batches;
  return batch ? batch.counts.succeeded + batch.counts.failed : 0;
}

/** Every item's line exactly once, in order, each with its own value. */
function expectEveryItemOnce(stdout: string) {
  const lines = stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  expect(lines.map((line) => line.index)).toEqual(Array.from({ length: ITEMS }, (_, n) => n));
  for (const line of lines)
    expect(line).toEqual({ index: line.index, ok: true, result: line.index * 2 });
}

/** Starts `labrun map` over the inputs; resolves, with its run, once a quarter of its items are done. */
async function mapUnderWay() {
  const map = labrun(["map", join(dir, "double.js"), "--inputs", join(dir, "inputs.jsonl")], env());
  await waitFor(
    "a quarter of the items to finish",
    async () => (await doneOfNewest()) >= ITEMS / 4,
    {
      timeoutMs: 120_000,
      intervalMs: 50,
    },
  );
  // Wrapped: an async function returning the promise itself would wait for it.
  return { map };
}

describe("batches under faults", () => {
  it("kill -9 of the coordinator mid-batch: it resumes and labrun map's stream picks up", async () => {
    const { map } = await mapUnderWay();
    await cluster.signalCoordinator("SIGKILL");
    await sleep(1_500);
    await cluster.startCoordinator();
    const out = await map;
    expect(out.code, out.stderr).toBe(0);
    expectEveryItemOnce(out.stdout);
  });

  it("kill -9 of an agent mid-batch: every item has exactly one terminal result, the right one", async () => {
    const { map } = await mapUnderWay();
    await cluster.signalAgent("a", "SIGKILL");
    const out = await map;
    expect(out.code, out.stderr).toBe(0);
    expectEveryItemOnce(out.stdout);
    const [batch] = (await cluster.client.listBatches({ limit: 1 })).batches;
    expect(batch).toMatchObject({ state: "succeeded", counts: { succeeded: ITEMS, failed: 0 } });
  });
});
