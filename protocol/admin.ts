import * as z from "zod";
import { AgentCapacity } from "./agents.js";
import { MaxLimits } from "./limits.js";
import { Runtime } from "./runtimes.js";

export const NodeState = z.enum(["ready", "draining", "lost"]);
export type NodeState = z.infer<typeof NodeState>;

/** One node as `GET /v1/admin/nodes` lists it. */
export const NodeInfo = z.object({
  id: z.string(),
  name: z.string(),
  hostname: z.string(),
  state: NodeState,
  slots: z.number().int(),
  running: z.number().int(),
  lastHeartbeatAt: z.string(),
  registeredAt: z.string(),
  version: z.string(),
  labels: z.record(z.string(), z.string()),
  jobsDone: z.number().int(),
  jobsFailed: z.number().int(),
  /** The largest job it takes, as it registered them (absent: no bound known). */
  maxLimits: MaxLimits.optional(),
  /** What all its jobs together may use (absent: only its slots bound it). */
  capacity: AgentCapacity.optional(),
  /** The runtimes it runs jobs in (absent: registered before runtimes, node only). */
  runtimes: z.array(Runtime).optional(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const NodeList = z.object({ nodes: z.array(NodeInfo) });
export type NodeList = z.infer<typeof NodeList>;

const Count = z.number().int().nonnegative();

/**
 * `GET /v1/admin/stats`: the cluster at one moment, read in one snapshot.
 * `finished` counts jobs that reached a terminal state in the trailing
 * minute and hour (their throughput); `nodes` uses the same states as
 * `GET /v1/admin/nodes` (lost = silent for longer than the lease TTL).
 */
/** Jobs by state. */
const JobCounts = z.object({
  queued: Count,
  leased: Count,
  running: Count,
  succeeded: Count,
  failed: Count,
  cancelled: Count,
});

export const ClusterStats = z.object({
  /** When the snapshot was taken (ISO 8601). */
  at: z.string(),
  jobs: JobCounts,
  finished: z.object({ lastMinute: Count, lastHour: Count }),
  nodes: z.object({ ready: Count, draining: Count, lost: Count }),
  /**
   * Batches by state (active: not finished yet), and their items by state
   * (items are also counted in `jobs`). Optional: added with batches.
   */
  batches: z
    .object({ active: Count, succeeded: Count, failed: Count, cancelled: Count })
    .optional(),
  batchItems: JobCounts.optional(),
});
export type ClusterStats = z.infer<typeof ClusterStats>;
