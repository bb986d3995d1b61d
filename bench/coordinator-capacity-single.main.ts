/**
 * `node dist/bench/coordinator-capacity-single.main.js [--jobs 60]
 * [--cpu-prof FILE]`: the coordinator's share of a warm single job
 * (bench/coordinator-capacity-single.ts) alone, printed as JSON; with
 * --cpu-prof, the coordinator's CPU profile of the measured jobs goes to FILE
 * and a summary of where its time went to stderr.
 */
import { parseArgs } from "node:util";
import { formatProfileSummary, summarizeCpuProfile } from "./coordinator/profile-summary.js";
import { singleJobShare } from "./coordinator-capacity-single.js";

const { values } = parseArgs({
  options: { jobs: { type: "string" }, "cpu-prof": { type: "string" }, dist: { type: "string" } },
});
const cpuProfile = values["cpu-prof"];
const result = await singleJobShare({
  ...(values.jobs ? { jobs: Number(values.jobs) } : {}),
  ...(values.dist ? { dist: values.dist } : {}),
  ...(cpuProfile ? { cpuProfile } : {}),
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (cpuProfile) process.stderr.write(`${formatProfileSummary(summarizeCpuProfile(cpuProfile))}\n`);
