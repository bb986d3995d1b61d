import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { formatProfileSummary, summarizeCpuProfile } from "./profile-summary.js";

/** The settings of a coordinator bench run alone; each one absent keeps the bench's default. */
export interface CapacityArgs {
  agents?: number;
  slots?: number;
  durationMs?: number;
  /** The bench's own size flag (`--big-queue`, `--big-batch`). */
  size?: number;
  /** Where the coordinator's CPU profile of each phase goes (created). */
  cpuProfileDir?: string;
}

/**
 * The flags the coordinator benches take when run alone: `--agents`,
 * `--slots`, `--duration-ms`, their own size flag and `--cpu-prof DIR`. A
 * value that is not a positive integer stops the process with exit 2.
 *
 * @example
 * const { size: bigQueue, ...rest } = capacityArgs("big-queue");
 */
export function capacityArgs(sizeFlag: string): CapacityArgs {
  const { values } = parseArgs({
    options: {
      agents: { type: "string" },
      slots: { type: "string" },
      "duration-ms": { type: "string" },
      [sizeFlag]: { type: "string" },
      "cpu-prof": { type: "string" },
    },
  });
  const positiveInt = (name: string): number | undefined => {
    const text = values[name];
    if (typeof text !== "string") return undefined;
    const value = Number(text);
    if (!Number.isInteger(value) || value <= 0) {
      process.stderr.write(`--${name} must be a positive integer, not ${text}\n`);
      process.exit(2);
    }
    return value;
  };
  const args: CapacityArgs = {};
  const agents = positiveInt("agents");
  const slots = positiveInt("slots");
  const durationMs = positiveInt("duration-ms");
  const size = positiveInt(sizeFlag);
  if (agents) args.agents = agents;
  if (slots) args.slots = slots;
  if (durationMs) args.durationMs = durationMs;
  if (size) args.size = size;
  const profileDir = values["cpu-prof"];
  if (typeof profileDir === "string") {
    args.cpuProfileDir = resolve(profileDir);
    mkdirSync(args.cpuProfileDir, { recursive: true });
  }
  return args;
}

/** A summary of each phase's coordinator CPU profile, on stderr. */
export function printCpuProfiles(profiles: Record<string, string> | undefined): void {
  for (const [phase, path] of Object.entries(profiles ?? {})) {
    process.stderr.write(`\n=== coordinator CPU profile, phase ${phase}: ${path}\n`);
    process.stderr.write(formatProfileSummary(summarizeCpuProfile(path)));
  }
}
