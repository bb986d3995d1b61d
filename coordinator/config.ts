import { z } from "zod";
import { DEFAULT_HOST, DEFAULT_PORT } from "../protocol/index.js";

/** The coordinator's settings, parsed once at start. */
export const CoordinatorConfig = z.object({
  host: z.string().min(1).default(DEFAULT_HOST),
  /** 0 picks a free port (tests). */
  port: z.number().int().min(0).max(65535).default(DEFAULT_PORT),
  dataDir: z.string().min(1),
  /** A lease not renewed for this long expires and its job is queued again. */
  leaseTtlMs: z.number().int().min(500).default(10_000),
  /** How often agents heartbeat; well under the lease TTL. */
  heartbeatMs: z.number().int().min(50).default(1_000),
  /** Leases a job may get before it fails with NODE_LOST. */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  /** How often expired leases are looked for. */
  sweepMs: z.number().int().min(10).default(500),
});
export type CoordinatorConfig = z.infer<typeof CoordinatorConfig>;
export type CoordinatorConfigInput = z.input<typeof CoordinatorConfig>;
