import { z } from "zod";

/** Largest program source accepted at submit (bytes of UTF-8). */
export const MAX_SOURCE_BYTES = 1024 * 1024;
/** Largest job input accepted at submit (bytes of its JSON text). */
export const MAX_INPUT_BYTES = 1024 * 1024;

/** Per-job resource limits a client may ask for; the agent applies defaults and caps. */
export const JobLimits = z
  .object({
    timeoutMs: z.number().int().min(100).max(3_600_000),
    memoryMb: z.number().int().min(16).max(65_536),
    cpus: z.number().min(0.05).max(64),
  })
  .strict();
export type JobLimits = z.infer<typeof JobLimits>;

/** What a job runs with when the client names no limits. */
export const DEFAULT_LIMITS: JobLimits = { timeoutMs: 10_000, memoryMb: 256, cpus: 1 };

/** Limits as a client sends them: any subset. */
export const JobLimitsInput = JobLimits.partial();
export type JobLimitsInput = z.infer<typeof JobLimitsInput>;
