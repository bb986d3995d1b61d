import { availableParallelism, hostname, totalmem } from "node:os";
import { z } from "zod";
import { AgentCapacity, type JobLimits, LIMIT_CEILINGS, MaxLimits } from "../protocol/index.js";
import { serverListText } from "../protocol/servers.js";

/**
 * The largest job a machine takes unless told otherwise: the protocol's
 * ceilings, but its memory less 512 MiB for the agent and the system, its
 * cores, and generous process and /tmp bounds (/tmp's pages count against
 * the job's memory in any case).
 */
export function machineMaxLimits(): JobLimits {
  return {
    ...LIMIT_CEILINGS,
    memoryMb: Math.min(
      LIMIT_CEILINGS.memoryMb,
      Math.max(256, Math.floor(totalmem() / 2 ** 20) - 512),
    ),
    cpus: Math.min(LIMIT_CEILINGS.cpus, availableParallelism()),
    pids: 1024,
    tmpfsMb: 1024,
  };
}

/** Everything an agent is started with; parsed once at start (flags > env > defaults). */
export const AgentConfig = z.object({
  /**
   * Coordinator base URL, e.g. http://127.0.0.1:7878, or several coordinators
   * of one store (`URL1,URL2`): the agent fails over between them.
   */
  server: serverListText(
    "--server must be a URL like http://127.0.0.1:7878, or several separated by commas",
  ),
  /** The coordinator's agent-join token. */
  token: z.string().min(1, "--token is required (the coordinator's agent join token)"),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "--name: letters, digits, _ . - (1–64)")
    .default(
      () =>
        hostname()
          .replace(/[^A-Za-z0-9_.-]/g, "-")
          .slice(0, 64) || "agent",
    ),
  slots: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(() => availableParallelism()),
  labels: z.record(z.string(), z.string()).default({}),
  /** How long one lease request may wait for work on the coordinator. */
  leaseWaitMs: z.number().int().min(0).max(60_000).default(20_000),
  /**
   * The largest limits a job may ask of this machine (any subset; see
   * machineMaxLimits for the rest): the coordinator leases it only jobs
   * within them, and the agent clamps to them all the same.
   */
  maxLimits: MaxLimits.default({}).transform((given) => ({ ...machineMaxLimits(), ...given })),
  /**
   * What all of this agent's jobs together may use (`--memory`, `--cpus`;
   * unset = no bound beyond the slots): the coordinator leases it a job only
   * while the limits of the jobs it holds, summed, leave room for the job's.
   */
  capacity: AgentCapacity.default({}),
  /** OCI runtime for job containers, e.g. runsc (gVisor); must be one the engine knows. */
  runtime: z.string().min(1).optional(),
  /** A seccomp profile file (Docker's JSON format) for job containers, instead of the engine's default. */
  seccompProfile: z.string().min(1).optional(),
  /** Containers kept booted ahead of their jobs (0 = off); default: one per slot. */
  warmPool: z.number().int().min(0).max(256).optional(),
  /** A warm container idle for longer than this is replaced by a fresh one. */
  warmMaxIdleMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
  /** On shutdown, how long running jobs may take to finish before they are stopped and requeued. */
  drainGraceMs: z.number().int().min(0).max(3_600_000).default(60_000),
  /** Use this runner image instead of building the bundled one. */
  image: z.string().min(1).optional(),
  /**
   * The python3 whose runner image runs python jobs (a path or a name on
   * PATH); unset: python3 on PATH, and node only when there is none.
   */
  python: z.string().min(1).optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;
