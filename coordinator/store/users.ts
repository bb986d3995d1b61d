import { timingSafeEqual } from "node:crypto";
import {
  type AddUserRequest,
  DEFAULT_USER,
  type QuotaDetails,
  type UserInfo,
} from "../../protocol/index.js";
import { ApiError, notFound } from "../errors.js";
import { type StoreContext, writeTransaction } from "./database.js";
import { DEFAULT_HALF_LIFE_MS, type UsageRow, usageNow } from "./fairShare.js";
import type { RemovedUser, UserIdentity } from "./interfaces.js";
import { coordinatorOutcome } from "./rows.js";
import type { SettleBatches } from "./settleBatches.js";

/** A users row as the verbs read it. */
export interface UserRow extends UsageRow {
  name: string;
  created_at: number;
  max_running: number | null;
  max_queued: number | null;
  queued: number;
}

export const USER_COLUMNS = `name, created_at, weight, max_running, max_queued, queued, running,
  running_since, usage, usage_at`;

const iso = (ms: number) => new Date(ms).toISOString();

/** A user's quotas as in force: their own, else the lab's default, else none (undefined). */
export function quotasOf(
  row: { max_running: number | null; max_queued: number | null },
  settings: StoreContext["settings"],
): { maxRunning: number | undefined; maxQueued: number | undefined } {
  return {
    maxRunning: row.max_running ?? settings.defaultMaxRunning,
    maxQueued: row.max_queued ?? settings.defaultMaxQueued,
  };
}

export const halfLifeOf = (settings: StoreContext["settings"]) =>
  settings.fairShareHalfLifeMs ?? DEFAULT_HALF_LIFE_MS;

/**
 * The max-queued check every submit runs inside its own transaction: past
 * the quota it throws 429 QUOTA_EXCEEDED with the numbers, and nothing is
 * queued. An owner without a row (none today) has no quota.
 */
export function prepareQueuedQuota({ db, settings }: StoreContext) {
  const byName = db.prepare<[string], { queued: number; max_queued: number | null }>(
    "SELECT queued, max_queued FROM users WHERE name = ?",
  );
  return function checkQueuedQuota(owner: string, submitted: number): void {
    checkQuota(byName.get(owner), owner, submitted, settings);
  };
}

/**
 * Throws 429 QUOTA_EXCEEDED when `submitted` more jobs would take the
 * owner's queued work past their max-queued quota (both stores); an owner
 * without a row has none.
 */
export function checkQuota(
  row: { queued: number; max_queued: number | null } | undefined,
  owner: string,
  submitted: number,
  settings: StoreContext["settings"],
): void {
  if (!row) return;
  const maxQueued = row.max_queued ?? settings.defaultMaxQueued;
  if (maxQueued === undefined || row.queued + submitted <= maxQueued) return;
  const details: QuotaDetails = { user: owner, maxQueued, queued: row.queued, submitted };
  throw new ApiError(
    "QUOTA_EXCEEDED",
    `user ${owner} may have ${maxQueued} job(s) queued; ${row.queued} are, and this submit adds ${submitted}: nothing was queued`,
    details,
  );
}

/** A users row as UserInfo, with the total usage of everyone listed (both stores). */
export function userInfo(
  user: UserRow,
  now: number,
  total: number,
  settings: StoreContext["settings"],
): UserInfo {
  const usage = usageNow(user, now, halfLifeOf(settings));
  const { maxRunning, maxQueued } = quotasOf(user, settings);
  return {
    name: user.name,
    createdAt: iso(user.created_at),
    running: user.running,
    queued: user.queued,
    usage,
    priority: usage / user.weight,
    share: total > 0 ? Math.min(1, usage / total) : 0,
    weight: user.weight,
    ...(maxRunning !== undefined ? { maxRunning } : {}),
    ...(maxQueued !== undefined ? { maxQueued } : {}),
  };
}

/** CONFLICT for the `default` user, whose token lives in tokens.json (both stores). */
export function refuseDefault(name: string, what: string): void {
  if (name === DEFAULT_USER) {
    throw new ApiError(
      "CONFLICT",
      `user ${DEFAULT_USER} is the shared client token of tokens.json: ${what} it there (and restart the coordinator)`,
    );
  }
}

/**
 * The users' verbs: add, find by token hash, list, remove, rotate, and the
 * owner of a job or a batch (for the routes' ownership check).
 */
export function prepareUsers(context: StoreContext, settleBatches: SettleBatches) {
  const { db, settings } = context;
  const row = db.prepare<[string], UserRow & { removed_at: number | null }>(
    `SELECT ${USER_COLUMNS}, removed_at FROM users WHERE name = ?`,
  );
  const insert = db.prepare(
    `INSERT INTO users (name, token_hash, created_at, weight, max_running, max_queued)
     VALUES (@name, @tokenHash, @now, @weight, @maxRunning, @maxQueued)`,
  );
  // A removed user's row keeps counting their running jobs: a new user of
  // that name takes it over, counts included.
  const revive = db.prepare(
    `UPDATE users SET token_hash = @tokenHash, created_at = @now, removed_at = NULL,
       weight = @weight, max_running = @maxRunning, max_queued = @maxQueued
     WHERE name = @name`,
  );
  const byHash = db.prepare<[string], { name: string; token_hash: string }>(
    "SELECT name, token_hash FROM users WHERE token_hash = ? AND removed_at IS NULL",
  );
  const live = db.prepare<[], UserRow>(
    `SELECT ${USER_COLUMNS} FROM users WHERE removed_at IS NULL ORDER BY name`,
  );
  const markRemoved = db.prepare(
    "UPDATE users SET removed_at = @now, token_hash = NULL WHERE name = @name",
  );
  const queuedOf = db.prepare<[string], { id: string; batch_id: string | null }>(
    `SELECT id, batch_id FROM jobs INDEXED BY jobs_owner_queued
     WHERE owner = ? AND state = 'queued'`,
  );
  const cancelQueued = db.prepare(
    `UPDATE jobs SET state = 'cancelled', outcome = @outcome, finished_at = @now
     WHERE owner = @name AND state = 'queued'`,
  );
  // A batch with items still running is left to finish them (a retry of one
  // runs too); it then ends failed, its queued items cancelled.
  const cancelBatches = db.prepare(
    `UPDATE batches SET cancelled_at = @now
     WHERE owner = @name AND finished_at IS NULL AND cancelled_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM jobs WHERE batch_id = batches.id
         AND state IN ('leased', 'running'))`,
  );
  const setToken = db.prepare("UPDATE users SET token_hash = ? WHERE name = ?");
  const jobOwner = db.prepare<[string], string>("SELECT owner FROM jobs WHERE id = ?").pluck();
  const batchOwner = db.prepare<[string], string>("SELECT owner FROM batches WHERE id = ?").pluck();

  const liveUser = (name: string) => {
    const found = row.get(name);
    if (!found || found.removed_at !== null) throw notFound(`user ${name}`);
    return found;
  };
  const toInfo = (user: UserRow, now: number, total: number): UserInfo =>
    userInfo(user, now, total, settings);

  return {
    /** A new user with this token hash; CONFLICT when the name is taken. */
    addUser: writeTransaction(
      db,
      function addUser(user: AddUserRequest, tokenHash: string, now: number): void {
        const existing = row.get(user.name);
        if (existing && existing.removed_at === null) {
          throw new ApiError("CONFLICT", `user ${user.name} exists already`);
        }
        const values = {
          name: user.name,
          tokenHash,
          now,
          weight: user.weight ?? 1,
          maxRunning: user.maxRunning ?? null,
          maxQueued: user.maxQueued ?? null,
        };
        if (existing) revive.run(values);
        else insert.run(values);
      },
    ),

    /** The live user whose token has this sha256 hash (compared in constant time too). */
    userByTokenHash(tokenHash: string): UserIdentity | undefined {
      const found = byHash.get(tokenHash);
      if (!found) return undefined;
      const same = timingSafeEqual(Buffer.from(found.token_hash), Buffer.from(tokenHash));
      return same ? { name: found.name } : undefined;
    },

    /** Every live user with their counts, usage, share and quotas, by name. */
    listUsers: db.transaction(function listUsers(now: number): UserInfo[] {
      const rows = live.all();
      const halfLife = halfLifeOf(settings);
      const total = rows.reduce((sum, user) => sum + usageNow(user, now, halfLife), 0);
      return rows.map((user) => toInfo(user, now, total));
    }),

    /**
     * The user's token stops working; their queued jobs and batch items are
     * cancelled (a batch with nothing running is cancelled); running jobs
     * finish. NOT_FOUND when unknown; CONFLICT for `default`.
     */
    removeUser: writeTransaction(db, function removeUser(name: string, now: number): RemovedUser {
      refuseDefault(name, "change its token");
      const user = liveUser(name);
      const queued = queuedOf.all(name);
      cancelQueued.run({
        name,
        now,
        outcome: coordinatorOutcome("CANCELLED", `user ${name} was removed`, 0),
      });
      cancelBatches.run({ name, now });
      markRemoved.run({ name, now });
      settleBatches([...new Set(queued.map((job) => job.batch_id))], now);
      return { name, cancelled: queued.map((job) => job.id), running: user.running };
    }),

    /** The user gets this new token hash; the old token stops working at once. */
    rotateUserToken: writeTransaction(
      db,
      function rotateUserToken(name: string, tokenHash: string): void {
        refuseDefault(name, "change its token");
        liveUser(name);
        setToken.run(tokenHash, name);
      },
    ),

    /** Who submitted a job (undefined: no such job). */
    jobOwner: (id: string): string | undefined => jobOwner.get(id),
    /** Who submitted a batch (undefined: no such batch). */
    batchOwner: (id: string): string | undefined => batchOwner.get(id),
  };
}
