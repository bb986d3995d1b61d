import * as z from "zod";
import type { AgentConfigInput } from "../agent/config.js";
import { durationFlag, memoryFlag } from "./args.js";
import { limitFlags } from "./limit-flags.js";

export const Grace = durationFlag("grace", "60s, 5m, 0s");
export const Warm = z.coerce
  .number({ message: "--warm must be a number of containers (0 turns the warm pool off)" })
  .int()
  .min(0)
  .max(256);

const agentMaxima = limitFlags("max-");

/**
 * How an agent runs its jobs: warm pool, grace, maxima, whole-agent capacity
 * and the hardening knobs. `labrun agent` takes them, and `labrun agent
 * install` checks them the same way before it writes them into the unit.
 */
export const AGENT_TUNING = {
  options: {
    runtime: { type: "string" },
    python: { type: "string" },
    warm: { type: "string" },
    grace: { type: "string" },
    memory: { type: "string" },
    cpus: { type: "string" },
    "seccomp-profile": { type: "string" },
    ...agentMaxima.options,
  },
  shape: {
    runtime: z.string().min(1).optional(),
    python: z.string().min(1).optional(),
    warm: Warm.optional(),
    grace: Grace.optional(),
    ...agentMaxima.shape,
    memory: memoryFlag("memory", "16g (all of this agent's jobs together)").optional(),
    cpus: z.coerce
      .number({ message: "--cpus must be a number of cores (all of this agent's jobs together)" })
      .min(0.05)
      .max(1024)
      .optional(),
    "seccomp-profile": z.string().min(1).optional(),
  },
} as const;

type TuningArgs = {
  [K in keyof typeof AGENT_TUNING.shape]?: z.output<(typeof AGENT_TUNING.shape)[K]>;
};

/** The agent settings the tuning flags give (only those named). */
export function agentTuning(args: TuningArgs): Partial<AgentConfigInput> {
  return {
    ...(args.runtime ? { runtime: args.runtime } : {}),
    ...(args.python ? { python: args.python } : {}),
    ...(args.warm !== undefined ? { warmPool: args.warm } : {}),
    ...(args.grace !== undefined ? { drainGraceMs: args.grace } : {}),
    ...(args["seccomp-profile"] ? { seccompProfile: args["seccomp-profile"] } : {}),
    maxLimits: agentMaxima.limits(args),
    capacity: {
      ...(args.memory !== undefined ? { memoryMb: args.memory } : {}),
      ...(args.cpus !== undefined ? { cpus: args.cpus } : {}),
    },
  };
}
