/**
 * `node dist/bench/coordinator-capacity.main.js [--agents 50] [--slots 4]
 * [--duration-ms 10000] [--big-queue 100000] [--cpu-prof DIR]`: runs the
 * coordinator-capacity bench alone and prints its result as JSON on stdout.
 * With --cpu-prof, the coordinator's CPU profile of each phase is written to
 * DIR (open it in Chrome DevTools) and a summary of where its time went is
 * printed on stderr.
 */
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatProfileSummary, summarizeCpuProfile } from "./coordinator/profile-summary.js";
import { benchCoordinatorCapacity } from "./coordinator-capacity.js";

const { values } = parseArgs({
  options: {
    agents: { type: "string" },
    slots: { type: "string" },
    "duration-ms": { type: "string" },
    "big-queue": { type: "string" },
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
const durationMs = positiveInt("duration-ms", values["duration-ms"]);
const bigQueue = positiveInt("big-queue", values["big-queue"]);
const cpuProfileDir = values["cpu-prof"] ? resolve(values["cpu-prof"]) : undefined;
if (cpuProfileDir) mkdirSync(cpuProfileDir, { recursive: true });

const result = await benchCoordinatorCapacity({
  ...(agents ? { agents } : {}),
  ...(slots ? { slots } : {}),
  ...(durationMs ? { durationMs } : {}),
  ...(bigQueue ? { bigQueue } : {}),
  ...(cpuProfileDir ? { cpuProfileDir } : {}),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);

for (const [phase, path] of Object.entries(result.cpuProfiles ?? {})) {
  process.stderr.write(`\n=== coordinator CPU profile, phase ${phase}: ${path}\n`);
  process.stderr.write(formatProfileSummary(summarizeCpuProfile(path)));
}
