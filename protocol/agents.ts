import * as z from "zod";
import { JsonValue, Outcome } from "./jobs.js";
import { JobLimits, MaxLimits } from "./limits.js";
import { ProgramEntry, ProgramFiles } from "./programs.js";
import { Runtime } from "./runtimes.js";

/**
 * What all of one agent's running jobs together may use; a missing value is
 * no bound. The coordinator sums the limits of the jobs the agent holds.
 */
export const AgentCapacity = z
  .object({
    memoryMb: z
      .number()
      .int()
      .min(16)
      .max(16 * 65_536),
    cpus: z.number().min(0.05).max(1024),
  })
  .partial()
  .strict();
export type AgentCapacity = z.infer<typeof AgentCapacity>;

const Name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - (1–64)");

/** `POST /v1/agents/register` body (join token). */
export const RegisterAgentRequest = z
  .object({
    name: Name,
    hostname: z.string().min(1).max(255),
    slots: z.number().int().min(1).max(256),
    version: z.string().min(1).max(64),
    labels: z.record(z.string().max(64), z.string().max(256)).default({}),
    /**
     * The largest limits this machine runs a job with (optional, added after
     * 0.1; any subset): the coordinator leases it only jobs within them.
     */
    maxLimits: MaxLimits.optional(),
    /** Whole-agent bounds (optional, added after 0.1). */
    capacity: AgentCapacity.optional(),
    /** The runtimes it runs jobs in (optional, added after 0.1; absent: node only). */
    runtimes: z.array(Runtime).min(1).max(8).optional(),
  })
  .strict();
export type RegisterAgentRequest = z.input<typeof RegisterAgentRequest>;

export const RegisterAgentResponse = z.object({
  agentId: z.string(),
  /** Per-agent token for all later calls of this agent. */
  token: z.string(),
  heartbeatMs: z.number().int().positive(),
  leaseTtlMs: z.number().int().positive(),
  /**
   * The limits a job gets when its client names none (optional, added after
   * 0.1): the agent boots its warm containers with them, so most jobs find one.
   */
  defaultLimits: JobLimits.optional(),
});
export type RegisterAgentResponse = z.infer<typeof RegisterAgentResponse>;

/** `POST /v1/agents/:id/lease` body; long-polls up to `waitMs` for work. */
export const LeaseRequest = z
  .object({
    free: z.number().int().min(0).max(256),
    waitMs: z.number().int().min(0).max(60_000).default(20_000),
  })
  .strict();
export type LeaseRequest = z.input<typeof LeaseRequest>;

/** What an agent needs to run a job. */
export const JobSpec = z.object({
  /** The program, when it is one file ("" with files). */
  source: z.string(),
  /** The one file's name, or the entry among the files. */
  filename: ProgramEntry,
  /** A program of several files (absent: source is the program). */
  files: ProgramFiles.optional(),
  /** A coordinator that predates runtimes leases node jobs only. */
  runtime: Runtime.default("node"),
  input: JsonValue.nullable(),
  limits: JobLimits,
  /**
   * Set on a batch's items only (optional, added after 0.1): the batch, and
   * whether it asked for one fresh container per item. Items of a batch that
   * does not may run one after another in one container.
   */
  batchId: z.string().optional(),
  isolate: z.boolean().optional(),
});
export type JobSpec = z.infer<typeof JobSpec>;

export const LeasedJob = z.object({
  id: z.string(),
  leaseId: z.string(),
  attempt: z.number().int().positive(),
  spec: JobSpec,
});
export type LeasedJob = z.infer<typeof LeasedJob>;

export const LeaseResponse = z.object({ jobs: z.array(LeasedJob) });
export type LeaseResponse = z.infer<typeof LeaseResponse>;

/**
 * What an agent measured since its previous heartbeat (each heartbeat sends
 * only the new samples; the coordinator adds them to its metrics). Unknown
 * keys are dropped rather than refused, so an agent that measures more never
 * has its heartbeat (its lease renewal) refused by an older coordinator.
 */
export const HeartbeatStats = z.object({
  /** How long each container took to boot, warm-pool and cold alike (ms). */
  containerStartMs: z.array(z.number().nonnegative()).max(1024).optional(),
  /** Jobs started on a container the warm pool had booted ahead. */
  warmRuns: z.number().int().nonnegative().optional(),
  /** Jobs that had to boot a container of their own. */
  coldRuns: z.number().int().nonnegative().optional(),
});
export type HeartbeatStats = z.infer<typeof HeartbeatStats>;

/** `POST /v1/agents/:id/heartbeat` body: the leases this agent is running. */
export const HeartbeatRequest = z
  .object({
    running: z.array(z.string().max(64)).max(1024),
    /** Optional (added after 0.1): agents that send none keep working. */
    stats: HeartbeatStats.optional(),
  })
  .strict();
export type HeartbeatRequest = z.infer<typeof HeartbeatRequest>;

/** Leases the agent must stop (cancelled, expired or reassigned). */
export const HeartbeatResponse = z.object({ cancel: z.array(z.string()) });
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

/** `POST /v1/agents/:id/results` body; idempotent per leaseId. */
export const ResultRequest = z.object({ leaseId: z.string().max(64), outcome: Outcome }).strict();
export type ResultRequest = z.infer<typeof ResultRequest>;

export const ResultResponse = z.object({ accepted: z.boolean() });
export type ResultResponse = z.infer<typeof ResultResponse>;

/** Results in one group at most: one request and one commit for all of them. */
export const MAX_RESULT_GROUP = 256;

/**
 * The largest body of a result group (the coordinator's limit on that route,
 * twice a single result's): an agent sends a group only while it fits.
 */
export const MAX_RESULT_GROUP_BYTES = 32 * 1024 * 1024;

/**
 * `POST /v1/agents/:id/results/group` body: many results at once, each
 * idempotent per leaseId as a single one is. The answer comes after the
 * one commit that records them all.
 */
export const ResultGroupRequest = z
  .object({ results: z.array(ResultRequest).min(1).max(MAX_RESULT_GROUP) })
  .strict();
export type ResultGroupRequest = z.infer<typeof ResultGroupRequest>;

/** Each result's answer, in the order sent: taken, or refused with the code a single post would get. */
export const ResultGroupResponse = z.object({
  results: z.array(
    z.object({
      leaseId: z.string(),
      accepted: z.boolean(),
      error: z.object({ code: z.string(), message: z.string() }).optional(),
    }),
  ),
});
export type ResultGroupResponse = z.infer<typeof ResultGroupResponse>;
