import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { round } from "../stats.js";
import { runCommand } from "./baselines.js";
import { TRIVIAL_SOURCE } from "./latency.js";
import { BIN, launchCluster } from "./processes.js";
import { dockerChurn, type Throughput } from "./throughput.js";

export interface MapThroughput {
  /** `labrun map` over `items` trivial inputs, one agent with `slots` slots (its warm pool on). */
  labrunMap: { items: number; slots: number; seconds: number; itemsPerSecond: number };
  /** `docker run --rm` of the same image and sandbox at the same parallelism. */
  dockerChurn: Throughput;
  /** labrun map items/s ÷ docker churn runs/s (the target: ≥ 50). */
  ratio: number;
}

/**
 * `labrun map` end to end, as a user runs it (the CLI process, the submit,
 * the agent's containers, the results stream), against raw container churn.
 * The churn rate is steady from a few hundred runs, so it runs at most
 * `churnRuns` of them.
 *
 * @example
 * const row = await benchMapThroughput({ items: 2000, slots: 2, flags, image });
 */
export async function benchMapThroughput(options: {
  items: number;
  slots: number;
  flags: string[];
  image: string;
  churnRuns?: number;
}): Promise<MapThroughput> {
  const { items, slots } = options;
  const workDir = mkdtempSync(join(tmpdir(), "labrun-bench-map-"));
  const program = join(workDir, "trivial.js");
  const inputs = join(workDir, "inputs.jsonl");
  writeFileSync(program, `${TRIVIAL_SOURCE}\n`);
  writeFileSync(inputs, `${Array.from({ length: items }, (_, index) => index).join("\n")}\n`);
  const cluster = await launchCluster({ slots, warm: slots });
  let labrunMap: MapThroughput["labrunMap"];
  try {
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // the pool fills
    const started = performance.now();
    const out = await runCommand(process.execPath, [
      BIN,
      "map",
      program,
      "--inputs",
      inputs,
      "--server",
      cluster.url,
      "--token",
      cluster.tokens.client,
    ]);
    const seconds = (performance.now() - started) / 1000;
    const lines = out.trim().split("\n");
    const ok = lines.filter((line) => (JSON.parse(line) as { ok: boolean }).ok).length;
    if (lines.length !== items || ok !== items) {
      throw new Error(`labrun map gave ${lines.length} lines, ${ok} ok, for ${items} items`);
    }
    labrunMap = { items, slots, seconds: round(seconds), itemsPerSecond: round(items / seconds) };
  } finally {
    await cluster.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  const churn = await dockerChurn(
    options.flags,
    options.image,
    Math.min(items, options.churnRuns ?? 200),
    slots,
  );
  return {
    labrunMap,
    dockerChurn: churn,
    ratio: round(labrunMap.itemsPerSecond / churn.jobsPerSecond, 3),
  };
}
