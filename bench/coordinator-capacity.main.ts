/**
 * `node dist/bench/coordinator-capacity.main.js [--agents 50] [--slots 4]
 * [--duration-ms 10000] [--big-queue 100000] [--cpu-prof DIR]`: runs the
 * coordinator-capacity bench alone and prints its result as JSON on stdout.
 * With --cpu-prof, the coordinator's CPU profile of each phase is written to
 * DIR (open it in Chrome DevTools) and a summary of where its time went is
 * printed on stderr.
 */
import { capacityArgs, printCpuProfiles } from "./coordinator/main-args.js";
import { benchCoordinatorCapacity } from "./coordinator-capacity.js";

const { size: bigQueue, ...settings } = capacityArgs("big-queue");
const result = await benchCoordinatorCapacity({ ...settings, ...(bigQueue ? { bigQueue } : {}) });
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
printCpuProfiles(result.cpuProfiles);
