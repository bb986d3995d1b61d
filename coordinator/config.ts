import { z } from "zod";
import {
  DEFAULT_HOST,
  DEFAULT_LIMITS,
  DEFAULT_PORT,
  type JobLimits,
  JobLimitsInput,
  MAX_BATCH_ITEMS,
  MAX_BATCH_ITEMS_CEILING,
  MAX_INPUT_BYTES,
  MAX_INPUT_BYTES_CEILING,
  MAX_PROGRAM_BYTES,
  MAX_PROGRAM_BYTES_CEILING,
} from "../protocol/index.js";
import { StoreUrl } from "./store/open.js";

const MiB = 1024 * 1024;

/** The coordinator's settings, parsed once at start and passed in. */
export const CoordinatorConfig = z
  .object({
    host: z.string().min(1).default(DEFAULT_HOST),
    /** 0 picks a free port (tests); the real one is in RunningCoordinator. */
    port: z.number().int().min(0).max(65535).default(DEFAULT_PORT),
    /** Holds labrun.db and tokens.json; created (0700) when missing. */
    dataDir: z.string().min(1),
    /**
     * The queue's PostgreSQL database (`postgres://…`), shared by every
     * coordinator given it; left out, the SQLite file in dataDir.
     */
    store: StoreUrl.optional(),
    /** A lease not renewed for this long expires; its job is queued again. */
    leaseTtlMs: z.number().int().min(500).max(3_600_000).default(10_000),
    /** How often agents heartbeat; must be well under the lease TTL. */
    heartbeatMs: z.number().int().min(50).max(600_000).default(1_000),
    /** Leases a job may get before it fails with NODE_LOST. */
    maxAttempts: z.number().int().min(1).max(100).default(3),
    /** How often expired leases are looked for. */
    sweepMs: z.number().int().min(10).max(60_000).default(500),
    /** Finished jobs (with their program, result and logs) are deleted this long after they ended. */
    retentionMs: z
      .number()
      .int()
      .min(60_000)
      .max(10 * 365 * 86_400_000)
      .default(7 * 86_400_000),
    /**
     * The limits a job gets for what its client does not name (e.g. a lab
     * whose programs need 30 s), laid over the protocol's DEFAULT_LIMITS here,
     * once: every limit has a value.
     */
    defaultLimits: JobLimitsInput.default({}).transform(
      (given): JobLimits => ({ ...DEFAULT_LIMITS, ...given }),
    ),
    /** Fair share forgets half of a user's usage in this long (README "Fair share"). */
    fairShareHalfLifeMs: z
      .number()
      .int()
      .min(1_000)
      .max(365 * 86_400_000)
      .default(3_600_000),
    /** Quotas of a user who has none of their own (absent: no bound). */
    defaultMaxRunning: z.number().int().min(0).max(10_000_000).optional(),
    defaultMaxQueued: z.number().int().min(0).max(10_000_000).optional(),
    /** Largest job input accepted at submit, as JSON text (413 past it). */
    maxInputBytes: z.number().int().min(1024).max(MAX_INPUT_BYTES_CEILING).default(MAX_INPUT_BYTES),
    /**
     * Largest program accepted at submit (413 past it): its source, or all
     * its files' contents (a bundle with its packages and source map).
     */
    maxProgramBytes: z
      .number()
      .int()
      .min(1024)
      .max(MAX_PROGRAM_BYTES_CEILING)
      .default(MAX_PROGRAM_BYTES),
    /** Most inputs in one batch (413 past it). */
    maxBatchItems: z.number().int().min(1).max(MAX_BATCH_ITEMS_CEILING).default(MAX_BATCH_ITEMS),
    /**
     * Largest batch body, program and every input together, as sent (413
     * past it): the coordinator holds a batch in memory until it is queued.
     */
    maxBatchBytes: z
      .number()
      .int()
      .min(MiB)
      .max(1024 * MiB)
      .default(64 * MiB),
  })
  .strict()
  .refine((config) => config.heartbeatMs * 2 <= config.leaseTtlMs, {
    message: "heartbeatMs must be at most half of leaseTtlMs, or healthy leases expire",
    path: ["heartbeatMs"],
  });
export type CoordinatorConfig = z.output<typeof CoordinatorConfig>;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfig>;

/**
 * Parses the config, or throws an Error whose message lists every bad value
 * (the CLI prints it and stops).
 */
export function parseCoordinatorConfig(input: CoordinatorConfigInput): CoordinatorConfig {
  const parsed = CoordinatorConfig.safeParse(input);
  if (!parsed.success) {
    throw new Error(`invalid coordinator settings:\n${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
