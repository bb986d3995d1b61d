import * as z from "zod";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest job input a coordinator accepts by default (bytes of its JSON text). */
export const MAX_INPUT_BYTES = 1024 * 1024;
/**
 * The most a coordinator may be configured to accept as one job's input.
 * Results and logs must still fit the agents' result body (coordinator/bodyLimits.ts).
 */
export const MAX_INPUT_BYTES_CEILING = 16 * MiB;

/**
 * Each limit a job runs under, with its range. The agent enforces all of
 * them on the job's container (timeout, memory, CPU, pids, /tmp) or on the
 * output it reads back (log and result bytes).
 */
const LIMIT_FIELDS = {
  /** Wall clock from the moment the runner has the job (TIMEOUT). */
  timeoutMs: z.number().int().min(100).max(3_600_000),
  /** Memory, swap included (OUT_OF_MEMORY). /tmp's pages count towards it too. */
  memoryMb: z.number().int().min(16).max(65_536),
  /** CPU quota in cores (a program past it is slowed, not stopped). */
  cpus: z.number().min(0.05).max(64),
  /** Processes and threads in the container; node itself needs ~15. */
  pids: z.number().int().min(16).max(4096),
  /** Size of the job's writable /tmp (ENOSPC for the program past it). */
  tmpfsMb: z.number().int().min(1).max(4096),
  /** Program output kept as the job's logs; the rest is counted and dropped. */
  logBytes: z.number().int().min(1024).max(MiB),
  /** Largest result, as JSON (OUTPUT_TOO_LARGE). */
  resultBytes: z
    .number()
    .int()
    .min(1024)
    .max(8 * MiB),
} as const;

const DEFAULTS = {
  timeoutMs: 10_000,
  memoryMb: 256,
  cpus: 1,
  pids: 64,
  tmpfsMb: 64,
  logBytes: 64 * KiB,
  resultBytes: 8 * MiB,
} as const satisfies { [K in keyof typeof LIMIT_FIELDS]: number };

/**
 * The limits of one job, all of them. Limits added after 0.1 (pids, tmpfsMb,
 * logBytes, resultBytes) default when missing, so jobs stored or sent by an
 * older coordinator still parse; limits this version does not know are
 * dropped, not refused (a newer coordinator's job still runs).
 */
export const JobLimits = z.object({
  timeoutMs: LIMIT_FIELDS.timeoutMs,
  memoryMb: LIMIT_FIELDS.memoryMb,
  cpus: LIMIT_FIELDS.cpus,
  pids: LIMIT_FIELDS.pids.default(DEFAULTS.pids),
  tmpfsMb: LIMIT_FIELDS.tmpfsMb.default(DEFAULTS.tmpfsMb),
  logBytes: LIMIT_FIELDS.logBytes.default(DEFAULTS.logBytes),
  resultBytes: LIMIT_FIELDS.resultBytes.default(DEFAULTS.resultBytes),
});
export type JobLimits = z.output<typeof JobLimits>;

/** The largest value the protocol allows for each limit. */
export const LIMIT_CEILINGS = Object.fromEntries(
  Object.entries(LIMIT_FIELDS).map(([name, field]) => [name, field.maxValue]),
) as JobLimits;

/** What a job runs with when neither the client nor the coordinator's config names a limit. */
export const DEFAULT_LIMITS: JobLimits = { ...DEFAULTS };

/** Limits as a client sends them, or a config names them: any subset. */
export const JobLimitsInput = z.object(LIMIT_FIELDS).partial().strict();
export type JobLimitsInput = z.infer<typeof JobLimitsInput>;

/**
 * The largest limits an agent runs a job with (sent at registration; any
 * subset, a missing one is no bound): the coordinator leases it only jobs
 * within them, and the agent clamps to them all the same.
 */
export const MaxLimits = JobLimitsInput;
export type MaxLimits = JobLimitsInput;

/** The names of the limits, in the order they are listed to people. */
export const LIMIT_NAMES = Object.keys(LIMIT_FIELDS) as Array<keyof typeof LIMIT_FIELDS>;
export type LimitName = (typeof LIMIT_NAMES)[number];

/**
 * `limits` with each value lowered to `max`'s where `max` names a smaller one.
 *
 * @example
 * clampLimits({ ...DEFAULT_LIMITS, pids: 512 }, { pids: 128 }).pids // 128
 */
export function clampLimits(limits: JobLimits, max: MaxLimits): JobLimits {
  const clamped = { ...limits };
  for (const name of LIMIT_NAMES) {
    const bound = max[name];
    if (bound !== undefined && clamped[name] > bound) clamped[name] = bound;
  }
  return clamped;
}
