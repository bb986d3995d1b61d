/**
 * `node dist/bench/batch-capacity.main.js [--agents 4] [--slots 256]
 * [--big-batch 100000] [--duration-ms 10000] [--cpu-prof DIR]`: runs the
 * batch bookkeeping bench alone (~30 s, no Docker) and prints its result as
 * JSON on stdout, and its README rows on stderr. With --cpu-prof, the
 * coordinator's CPU profile of each phase is written to DIR and summarised
 * on stderr.
 */
import { benchBatchCapacity } from "./batch-capacity.js";
import { capacityArgs, printCpuProfiles } from "./coordinator/main-args.js";
import { renderBatchCapacity } from "./report.js";

const { size: bigBatch, ...settings } = capacityArgs("big-batch");
const result = await benchBatchCapacity({ ...settings, ...(bigBatch ? { bigBatch } : {}) });
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
process.stderr.write(`${renderBatchCapacity(result).join("\n")}\n`);
printCpuProfiles(result.cpuProfiles);
