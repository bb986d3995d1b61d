import type { z } from "zod";
import type {
  AddUserRequest,
  AuditAction,
  AuditPage,
  Batch,
  BatchPage,
  BatchResultsQuery,
  ClusterStats,
  FailedItem,
  ItemResult,
  Job,
  JobLimits,
  JobPage,
  JobState,
  LeasedJob,
  NewBatch,
  NodeInfo,
  Outcome,
  ProgramFile,
  RegisterAgentRequest,
  SubmitBatchResponse,
  SubmitJobParsed,
  UserInfo,
} from "../../protocol/index.js";
import type { ApiError } from "../errors.js";
import type { StoredJson } from "../storedJson.js";
import type { Tokens } from "../tokens.js";

/**
 * A leased job as the store hands it to the lease route: LeasedJob, but for
 * its program's files, still the JSON the store kept (the answer writes it
 * as it is: storedJson.ts; `.value` parses it).
 */
export type StoredLeasedJob = Omit<LeasedJob, "spec"> & {
  spec: Omit<LeasedJob["spec"], "files"> & { files?: StoredJson<ProgramFile[]> };
};

/**
 * The queue's verbs. Terms as in protocol/index.ts: a job is leased to an
 * agent (node) for `leaseTtlMs`; heartbeats renew the lease; a lease that is
 * not renewed expires and the job is queued again, or fails with NODE_LOST
 * after `maxAttempts` leases.
 *
 * Every verb takes `now` (epoch ms) from the caller, so tests move time by
 * hand. Verbs that change several rows run in one transaction. Refusals are
 * ApiErrors (NOT_FOUND, STALE_LEASE) that the HTTP layer answers as they are.
 */
export interface Store {
  /**
   * Queues a new job (limits = DEFAULT_LIMITS merged with the requested ones)
   * for `owner` (default: `default`); past the owner's max-queued quota it
   * throws QUOTA_EXCEEDED (429) and queues nothing.
   */
  enqueue(request: SubmitJobParsed, now: number, owner?: string): Promise<Job>;
  /**
   * One job; NOT_FOUND when there is none. A queued job that no ready node
   * can take (none offers its runtime) says so in `waiting`.
   */
  getJob(id: string, now?: number): Promise<Job>;
  /**
   * Single jobs, newest first (a batch's items are read through the batch),
   * of `owner` when given, else everyone's;
   * `cursor` is the opaque `nextCursor` of the previous page.
   */
  listJobs(options: ListJobsOptions): Promise<JobPage>;
  /**
   * Queued, leased or running → cancelled at once (the agent holding the
   * lease is told on its next heartbeat). A terminal job is returned as it is.
   */
  cancel(id: string, now: number): Promise<Changed<Job>>;

  /**
   * Queues a batch and every item, in one transaction: all of them or none
   * (none past the owner's max-queued quota: QUOTA_EXCEEDED).
   */
  enqueueBatch(
    batch: NewBatch,
    limits: JobLimits,
    now: number,
    owner?: string,
  ): Promise<SubmitBatchResponse>;
  /** One batch with its counts by state; NOT_FOUND when there is none. */
  getBatch(id: string): Promise<Batch>;
  /** Newest first, each with its counts; of `owner` when given, else everyone's. */
  listBatches(options: ListBatchesOptions): Promise<BatchPage>;
  /**
   * The next result lines after the first `from`: in index order as far as
   * every item is done, or in completion order. `complete` once the reader
   * has every line of a finished batch.
   */
  batchResults(batchId: string, options: BatchResultsOptions, now: number): Promise<BatchResults>;
  /**
   * A page of the batch's finished items in the order they ended, after
   * `after` and before `before` (epoch ms), each with its measured duration.
   */
  batchItemEnds(batchId: string, options: BatchItemEndsOptions): Promise<BatchItemEnd[]>;
  /** The failed items with the lowest indexes (at most `limit`), and how many items ended since `since`. */
  batchFailures(batchId: string, options: { limit: number; since: number }): Promise<BatchFailures>;
  /** Every item not yet terminal → cancelled, at once; the batch is cancelled. */
  cancelBatch(batchId: string, now: number): Promise<CancelledBatch>;
  /** The failed items queued again; returns how many. */
  retryBatch(batchId: string): Promise<number>;

  registerAgent(agent: NewAgent, tokenHash: string, now: number): Promise<AgentIdentity>;
  /** The agent whose per-agent token has this sha256 hash. */
  agentByTokenHash(tokenHash: string): Promise<AgentIdentity | undefined>;
  /** ready ⇄ draining (a draining agent gets no new leases). NOT_FOUND when unknown. */
  setAgentState(agentId: string, state: "ready" | "draining", now: number): Promise<NodeInfo>;
  /** Forgets an agent (its token stops working); its leases expire at once. */
  removeAgent(agentId: string, now: number): Promise<ExpiredLeases>;

  /**
   * Hands up to `free` of the oldest queued jobs to the agent, atomically:
   * each becomes `leased` with a new leaseId, attempts + 1 and a deadline
   * of now + leaseTtl. A draining or unknown agent gets none.
   */
  lease(agentId: string, free: number, now: number): Promise<StoredLeasedJob[]>;
  /**
   * Renews the deadlines of the agent's current leases among `running`,
   * marks leased → running, and returns the leaseIds the agent must stop:
   * those that are no longer its current lease (cancelled, expired, unknown).
   */
  heartbeat(agentId: string, running: string[], now: number): Promise<string[]>;
  /**
   * Records the outcome of the agent's current lease: succeeded or failed.
   * A repeat for the lease that already completed the job changes nothing;
   * any other lease throws STALE_LEASE (409) and changes nothing.
   */
  complete(agentId: string, leaseId: string, outcome: Outcome, now: number): Promise<Changed<Job>>;
  /**
   * Many results in one transaction, each taken or refused as `complete`
   * would. A batch item whose sandbox failed (attempts left) or whose program
   * failed (batch retries left) is queued again instead of finishing.
   */
  completeMany(
    agentId: string,
    results: readonly { leaseId: string; outcome: Outcome }[],
    now: number,
  ): Promise<CompletedResult[]>;
  /** Retention: deletes up to a batch of jobs that finished before `before`; returns how many. */
  pruneFinished(before: number): Promise<number>;
  /** Pushes every live lease's deadline to at least `until`; returns how many moved. */
  extendLeases(until: number): Promise<number>;
  /** Leases past their deadline: queued again, or failed with NODE_LOST. */
  expireLeases(now: number): Promise<ExpiredLeases>;

  /** A user with this token hash; CONFLICT when a live user has the name. */
  addUser(user: AddUserRequest, tokenHash: string, now: number): Promise<void>;
  /** The live user whose token has this sha256 hash. */
  userByTokenHash(tokenHash: string): Promise<UserIdentity | undefined>;
  /** Live users with their counts, decayed usage, share and quotas in force. */
  listUsers(now: number): Promise<UserInfo[]>;
  /**
   * The user's token stops at once; their queued work is cancelled, their
   * running jobs finish. NOT_FOUND when unknown, CONFLICT for `default`.
   */
  removeUser(name: string, now: number): Promise<RemovedUser>;
  /** A new token hash for the user; the old token stops at once. */
  rotateUserToken(name: string, tokenHash: string): Promise<void>;
  /** Who submitted the job or batch; undefined when there is none. */
  jobOwner(id: string): Promise<string | undefined>;
  batchOwner(id: string): Promise<string | undefined>;
  /**
   * The fixed tokens (client, admin, agent join) every coordinator on this
   * store uses: `offered` are stored when the store holds none yet (the
   * first offer wins, also between coordinators starting together), and
   * the held ones are returned, `offered` or not.
   */
  claimTokens(offered: Tokens): Promise<Tokens>;
  /** Appends an admin action to the audit log. */
  recordAudit(entry: NewAuditEntry, now: number): Promise<void>;
  /** The audit log, newest first. */
  listAudit(options: ListAuditOptions): Promise<AuditPage>;

  /**
   * Takes or renews the named lease `name` (the maintenance leader's) for
   * `holder`, until `ttlMs` from now by the database's own clock: taken when
   * nobody holds it, its holder let it expire, or `holder` holds it already.
   * True when `holder` holds it now; of holders racing for it, one wins.
   */
  holdLeadership(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /** Gives up `name` if `holder` holds it (a clean stop), so another may take it at once. */
  releaseLeadership(name: string, holder: string): Promise<void>;

  /** Whether any job is queued (cheap: one index probe). */
  hasQueued(): Promise<boolean>;
  /** Every registered agent, `lost` when silent for longer than the lease TTL. */
  listNodes(now: number): Promise<NodeInfo[]>;
  /**
   * Jobs by state, jobs finished in the last minute and hour, and nodes by
   * state (as listNodes counts them), from one read snapshot.
   */
  stats(now: number): Promise<ClusterStats>;
  /** Throws when the database cannot answer (readiness). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreSettings {
  leaseTtlMs: number;
  maxAttempts: number;
  /** Fair share forgets half of a user's usage in this long (default 1 h; fairShare.ts). */
  fairShareHalfLifeMs?: number | undefined;
  /** Quotas of users who have none of their own (absent: no bound). */
  defaultMaxRunning?: number | undefined;
  defaultMaxQueued?: number | undefined;
}

export interface ListJobsOptions {
  state?: JobState | undefined;
  owner?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export interface ListBatchesOptions {
  owner?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export type BatchResultsOptions = z.output<typeof BatchResultsQuery>;

export interface BatchResults {
  lines: ItemResult[];
  total: number;
  complete: boolean;
}

/** Where a reader of `batchItemEnds` is: the last item it read (by end time, then index). */
export interface BatchItemEndsCursor {
  finishedAt: number;
  index: number;
}

export interface BatchItemEndsOptions {
  after?: BatchItemEndsCursor | undefined;
  /** Only items that ended before this (epoch ms). */
  before: number;
  limit: number;
}

/** One finished item: when it started and ended, and how long its run took (null: no stats). */
export interface BatchItemEnd {
  index: number;
  finishedAt: number;
  startedAt: number | null;
  state: JobState;
  durationMs: number | null;
}

export interface BatchFailures {
  items: FailedItem[];
  /** More items failed than `items` holds. */
  more: boolean;
  finishedSince: number;
}

export interface CancelledBatch {
  batch: Batch;
  /** Items cancelled now (their waiters are woken). */
  cancelled: string[];
}

/** What `completeMany` tells of a job: enough to wake its waiters. */
export interface JobRef {
  id: string;
  state: JobState;
  batchId: string | null;
}

/** One result of `completeMany`: taken (changed or a repeat), or refused with its error. */
export type CompletedResult =
  | ({ leaseId: string } & Changed<JobRef>)
  | { leaseId: string; refused: ApiError };

/** A verb's result, and whether it changed anything (then waiters are woken). */
export interface Changed<T> {
  value: T;
  changed: boolean;
}

/** A registration as the schema parsed it (labels defaulted). */
export type NewAgent = z.output<typeof RegisterAgentRequest>;

export interface AgentIdentity {
  id: string;
  name: string;
}

/** Job ids by what an expiry did to them, and the batches whose items failed. */
export interface ExpiredLeases {
  requeued: string[];
  failed: string[];
  batches: string[];
}

export interface UserIdentity {
  name: string;
}

/** What removing a user did: their queued jobs cancelled now, and how many still run. */
export interface RemovedUser {
  name: string;
  cancelled: string[];
  running: number;
}

export interface NewAuditEntry {
  actor: string;
  action: AuditAction;
  target: string;
  details?: Record<string, unknown>;
}

export interface ListAuditOptions {
  limit: number;
  cursor?: string | undefined;
}
