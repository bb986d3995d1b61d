/**
 * `node dist/bench/batch-capacity.main.js [--agents 4] [--slots 256]
 * [--big-batch 100000] [--duration-ms 10000] [--cpu-prof DIR]`: runs the
 * batch bookkeeping bench alone (~30 s, no Docker) and prints its result as
 * JSON on stdout, and its README rows on stderr. With --cpu-prof, the
 * coordinator's CPU profile of each phase is written to DIR and summarised
 * on stderr.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { benchBatchCapacity } from "./batch-capacity.js";
import { formatProfileSummary, summarizeCpuProfile } from "./coordinator/profile-summary.js";
import { renderBatchCapacity } from "./report.js";

const { values } = parseArgs({
  options: {
    agents: { type: "string" },
    slots: { type: "string" },
    "big-batch": { type: "string" },
    "duration-ms": { type: "string" },
    "cpu-prof": { type: "string" },
  },
});

const positiveInt = (name: string, text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive integer, not ${text}\n`);
    process.exit(2);
  }
  return value;
};

const agents = positiveInt("agents", values.agents);
const slots = positiveInt("slots", values.slots);
const bigBatch = positiveInt("big-batch", values["big-batch"]);
const durationMs = positiveInt("duration-ms", values["duration-ms"]);
const cpuProfileDir = values["cpu-prof"] ? resolve(values["cpu-prof"]) : undefined;
if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });

const result = await benchBatchCapacity({
  ...(agents ? { agents } : {}),
  ...(slots ? { slots } : {}),
  ...(bigBatch ? { bigBatch } : {}),
  ...(durationMs ? { durationMs } : {}),
  ...(cpuProfileDir ? { cpuProfileDir } : {}),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
process.stderr.write(`${renderBatchCapacity(result).join("\n")}\n`);

for (const [phase, path] of Object.entries(result.cpuProfiles ?? {})) {
  process.stderr.write(`\n=== coordinator CPU profile, phase ${phase}: ${path}\n`);
  process.stderr.write(formatProfileSummary(summarizeCpuProfile(path)));
}
