import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import {
  DEFAULT_LIMITS,
  type Job,
  type JobLimits,
  type JobState,
  type LeasedJob,
  type NodeInfo,
  type Outcome,
  type SubmitJobParsed,
} from "../../protocol/index.js";
import { ApiError, notFound } from "../errors.js";
import { migrate } from "./migrations.js";

const newId = (prefix: string, bytes: number) =>
  `${prefix}_${randomBytes(bytes).toString("base64url")}`;

interface JobRow {
  seq: number;
  id: string;
  state: JobState;
  source: string;
  filename: string;
  input: string;
  limits: string;
  labels: string;
  attempts: number;
  max_attempts: number;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  agent_id: string | null;
  node: string | null;
  lease_id: string | null;
  lease_expires_at: number | null;
  completed_lease_id: string | null;
  outcome: string | null;
}

interface AgentRow {
  id: string;
  name: string;
  hostname: string;
  slots: number;
  version: string;
  labels: string;
  state: "ready" | "draining";
  registered_at: number;
  last_heartbeat_at: number;
  running: number;
  done: number;
  failed: number;
}

export interface StoreSettings {
  leaseTtlMs: number;
  maxAttempts: number;
}

const iso = (ms: number | null) => (ms === null ? undefined : new Date(ms).toISOString());

function toJob(row: JobRow): Job {
  return {
    id: row.id,
    state: row.state,
    attempts: row.attempts,
    filename: row.filename,
    createdAt: new Date(row.created_at).toISOString(),
    ...(row.started_at !== null ? { startedAt: iso(row.started_at) } : {}),
    ...(row.finished_at !== null ? { finishedAt: iso(row.finished_at) } : {}),
    ...(row.node !== null ? { node: row.node } : {}),
    limits: JSON.parse(row.limits) as JobLimits,
    labels: JSON.parse(row.labels) as Record<string, string>,
    ...(row.outcome !== null ? { outcome: JSON.parse(row.outcome) as Outcome } : {}),
  };
}

/**
 * The durable queue: SQLite in WAL mode. `synchronous = NORMAL` is chosen on
 * purpose: a committed transaction survives a kill -9 of the coordinator
 * (the WAL is in the OS page cache); only an OS crash or power loss may lose
 * the last few commits. Every verb that changes several rows runs in one
 * transaction; all statements are prepared once.
 */
export class Store {
  private readonly db: Database.Database;
  private readonly sql;

  constructor(
    dataDir: string,
    private readonly settings: StoreSettings,
  ) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(dataDir, "labrun.db"));
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.pragma("foreign_keys = ON");
    migrate(this.db);
    const db = this.db;
    this.sql = {
      insertJob: db.prepare(
        `INSERT INTO jobs (id, state, source, filename, input, limits, labels, max_attempts, created_at)
         VALUES (@id, 'queued', @source, @filename, @input, @limits, @labels, @maxAttempts, @now)`,
      ),
      jobById: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE id = ?"),
      jobByLease: db.prepare<[string], JobRow>("SELECT * FROM jobs WHERE lease_id = ?"),
      listAll: db.prepare<[number, number], JobRow>(
        "SELECT * FROM jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?",
      ),
      listByState: db.prepare<[string, number, number], JobRow>(
        "SELECT * FROM jobs WHERE state = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      ),
      queued: db.prepare<[number], JobRow>(
        "SELECT * FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT ?",
      ),
      markLeased: db.prepare(
        `UPDATE jobs SET state = 'leased', agent_id = @agentId, node = @node, lease_id = @leaseId,
           lease_expires_at = @expires, attempts = attempts + 1, started_at = @now WHERE seq = @seq`,
      ),
      renew: db.prepare(
        `UPDATE jobs SET lease_expires_at = @expires,
           state = CASE WHEN state = 'leased' THEN 'running' ELSE state END
         WHERE lease_id = @leaseId AND agent_id = @agentId AND state IN ('leased', 'running')`,
      ),
      finish: db.prepare(
        `UPDATE jobs SET state = @state, outcome = @outcome, finished_at = @now,
           completed_lease_id = @leaseId, lease_expires_at = NULL
         WHERE id = @id`,
      ),
      cancel: db.prepare(
        `UPDATE jobs SET state = 'cancelled', outcome = @outcome, finished_at = @now, lease_expires_at = NULL
         WHERE id = @id`,
      ),
      expired: db.prepare<[number], JobRow>(
        "SELECT * FROM jobs WHERE state IN ('leased', 'running') AND lease_expires_at < ?",
      ),
      requeue: db.prepare(
        `UPDATE jobs SET state = 'queued', agent_id = NULL, node = NULL, lease_id = NULL,
           lease_expires_at = NULL WHERE seq = ?`,
      ),
      insertAgent: db.prepare(
        `INSERT INTO agents (id, name, hostname, slots, version, labels, token_hash, registered_at, last_heartbeat_at)
         VALUES (@id, @name, @hostname, @slots, @version, @labels, @tokenHash, @now, @now)`,
      ),
      agentByTokenHash: db.prepare<[string], { id: string; name: string; state: string }>(
        "SELECT id, name, state FROM agents WHERE token_hash = ?",
      ),
      agentSeen: db.prepare("UPDATE agents SET last_heartbeat_at = ? WHERE id = ?"),
      nodes: db.prepare<[], AgentRow>(
        `SELECT a.*,
           (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state IN ('leased', 'running')) AS running,
           (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state = 'succeeded') AS done,
           (SELECT COUNT(*) FROM jobs j WHERE j.agent_id = a.id AND j.state = 'failed') AS failed
         FROM agents a ORDER BY a.name, a.registered_at`,
      ),
      ping: db.prepare("SELECT 1"),
    };
  }

  enqueue(request: SubmitJobParsed, now: number): Job {
    const id = newId("j", 12);
    const limits: JobLimits = { ...DEFAULT_LIMITS, ...request.limits };
    this.sql.insertJob.run({
      id,
      source: request.source,
      filename: request.filename,
      input: JSON.stringify(request.input ?? null),
      limits: JSON.stringify(limits),
      labels: JSON.stringify(request.labels ?? {}),
      maxAttempts: this.settings.maxAttempts,
      now,
    });
    return this.getJob(id);
  }

  getJob(id: string): Job {
    const row = this.sql.jobById.get(id);
    if (!row) throw notFound(`job ${id}`);
    return toJob(row);
  }

  /** Newest first; the cursor is the opaque position after the last job returned. */
  listJobs(options: { state?: JobState | undefined; limit: number; cursor?: string | undefined }) {
    const before =
      options.cursor === undefined ? Number.MAX_SAFE_INTEGER : decodeCursor(options.cursor);
    const rows = options.state
      ? this.sql.listByState.all(options.state, before, options.limit + 1)
      : this.sql.listAll.all(before, options.limit + 1);
    const page = rows.slice(0, options.limit);
    const last = page.at(-1);
    return {
      jobs: page.map(toJob),
      ...(rows.length > options.limit && last ? { nextCursor: encodeCursor(last.seq) } : {}),
    };
  }

  /**
   * A queued job is cancelled at once; a leased or running one too (the
   * client's view is final), and its agent learns of it on its next heartbeat.
   * A job already terminal is returned as it is.
   */
  cancel(id: string, now: number): { job: Job; changed: boolean } {
    return this.db.transaction(() => {
      const row = this.sql.jobById.get(id);
      if (!row) throw notFound(`job ${id}`);
      if (row.state === "succeeded" || row.state === "failed" || row.state === "cancelled") {
        return { job: toJob(row), changed: false };
      }
      const outcome: Outcome = {
        ok: false,
        error: { code: "CANCELLED", message: "cancelled by a client" },
        logs: "",
        stats: { durationMs: row.started_at === null ? 0 : Math.max(0, now - row.started_at) },
      };
      this.sql.cancel.run({ id, outcome: JSON.stringify(outcome), now });
      return { job: this.getJob(id), changed: true };
    })();
  }

  registerAgent(
    agent: {
      name: string;
      hostname: string;
      slots: number;
      version: string;
      labels: Record<string, string>;
    },
    tokenHash: string,
    now: number,
  ): string {
    const id = newId("a", 9);
    this.sql.insertAgent.run({
      id,
      ...agent,
      labels: JSON.stringify(agent.labels),
      tokenHash,
      now,
    });
    return id;
  }

  agentByTokenHash(hash: string) {
    return this.sql.agentByTokenHash.get(hash);
  }

  /** Hands the oldest queued jobs to an agent, in one transaction. */
  lease(agent: { id: string; name: string }, free: number, now: number): LeasedJob[] {
    if (free <= 0) return [];
    return this.db.transaction(() => {
      const rows = this.sql.queued.all(free);
      return rows.map((row) => {
        const leaseId = newId("l", 12);
        this.sql.markLeased.run({
          seq: row.seq,
          agentId: agent.id,
          node: agent.name,
          leaseId,
          expires: now + this.settings.leaseTtlMs,
          now,
        });
        return {
          id: row.id,
          leaseId,
          attempt: row.attempts + 1,
          spec: {
            source: row.source,
            filename: row.filename,
            input: JSON.parse(row.input),
            limits: JSON.parse(row.limits) as JobLimits,
          },
        };
      });
    })();
  }

  /** Renews the agent's current leases; returns the ones it must stop. */
  heartbeat(agentId: string, running: string[], now: number): string[] {
    return this.db.transaction(() => {
      this.sql.agentSeen.run(now, agentId);
      const cancel: string[] = [];
      for (const leaseId of running) {
        const renewed = this.sql.renew.run({
          leaseId,
          agentId,
          expires: now + this.settings.leaseTtlMs,
        });
        if (renewed.changes === 0) cancel.push(leaseId);
      }
      return cancel;
    })();
  }

  /**
   * Records a result for the current lease of a running job. A repeat of the
   * result that already completed the job is accepted without change; any
   * other lease is stale (409) and changes nothing.
   */
  complete(
    agentId: string,
    leaseId: string,
    outcome: Outcome,
    now: number,
  ): { job: Job; changed: boolean } {
    return this.db.transaction(() => {
      const row = this.sql.jobByLease.get(leaseId);
      if (!row || row.agent_id !== agentId) {
        throw new ApiError("STALE_LEASE", `lease ${leaseId} is not held by this agent`);
      }
      if (row.completed_lease_id === leaseId) return { job: toJob(row), changed: false };
      if (row.state !== "leased" && row.state !== "running") {
        throw new ApiError(
          "STALE_LEASE",
          `job ${row.id} is already ${row.state}; the result is not taken`,
        );
      }
      this.sql.finish.run({
        id: row.id,
        state: outcome.ok ? "succeeded" : "failed",
        outcome: JSON.stringify(outcome),
        leaseId,
        now,
      });
      this.sql.agentSeen.run(now, agentId);
      return { job: this.getJob(row.id), changed: true };
    })();
  }

  /**
   * Leases past their deadline: the job is queued again, or fails with
   * NODE_LOST once it has used all its attempts. Returns what changed.
   */
  expireLeases(now: number): { requeued: string[]; failed: string[] } {
    return this.db.transaction(() => {
      const requeued: string[] = [];
      const failed: string[] = [];
      for (const row of this.sql.expired.all(now)) {
        if (row.attempts >= row.max_attempts) {
          const outcome: Outcome = {
            ok: false,
            error: {
              code: "NODE_LOST",
              message: `the node running this job stopped answering (${row.attempts} attempts)`,
            },
            logs: "",
            stats: { durationMs: 0 },
          };
          this.sql.finish.run({
            id: row.id,
            state: "failed",
            outcome: JSON.stringify(outcome),
            leaseId: null,
            now,
          });
          failed.push(row.id);
        } else {
          this.sql.requeue.run(row.seq);
          requeued.push(row.id);
        }
      }
      return { requeued, failed };
    })();
  }

  listNodes(now: number): NodeInfo[] {
    return this.sql.nodes.all().map((row) => ({
      id: row.id,
      name: row.name,
      hostname: row.hostname,
      state: now - row.last_heartbeat_at > this.settings.leaseTtlMs ? "lost" : row.state,
      slots: row.slots,
      running: row.running,
      lastHeartbeatAt: new Date(row.last_heartbeat_at).toISOString(),
      registeredAt: new Date(row.registered_at).toISOString(),
      version: row.version,
      labels: JSON.parse(row.labels) as Record<string, string>,
      jobsDone: row.done,
      jobsFailed: row.failed,
    }));
  }

  ping(): void {
    this.sql.ping.get();
  }

  close(): void {
    this.db.close();
  }
}

const encodeCursor = (seq: number) => Buffer.from(String(seq)).toString("base64url");

function decodeCursor(cursor: string): number {
  const text = Buffer.from(cursor, "base64url").toString();
  const seq = Number(text);
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(seq)) {
    throw new ApiError("VALIDATION_ERROR", "invalid query: cursor is not one this server gave out");
  }
  return seq;
}
