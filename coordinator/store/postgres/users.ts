import { timingSafeEqual } from "node:crypto";
import type { AddUserRequest, UserInfo } from "../../../protocol/index.js";
import { ApiError, notFound } from "../../errors.js";
import { usageNow } from "../fairShare.js";
import type { RemovedUser, UserIdentity } from "../interfaces.js";
import { coordinatorOutcome } from "../rows.js";
import {
  checkQuota,
  halfLifeOf,
  refuseDefault,
  USER_COLUMNS,
  type UserRow,
  userInfo,
} from "../users.js";
import {
  type PgContext,
  type Queryable,
  query,
  readSnapshot,
  writeTransaction,
} from "./database.js";
import { settleBatches } from "./settleBatches.js";

const USER_SQL = {
  // Locked: a verb on one user waits for another on the same user.
  row: `SELECT ${USER_COLUMNS}, removed_at FROM users WHERE name = $1 FOR UPDATE`,
  insert: `INSERT INTO users (name, token_hash, created_at, weight, max_running, max_queued)
    VALUES ($1, $2, $3, $4, $5, $6)`,
  // A removed user's row keeps counting their running jobs: a new user of
  // that name takes it over, counts included.
  revive: `UPDATE users SET token_hash = $2, created_at = $3, removed_at = NULL,
      weight = $4, max_running = $5, max_queued = $6
    WHERE name = $1`,
  byHash: "SELECT name, token_hash FROM users WHERE token_hash = $1 AND removed_at IS NULL",
  live: `SELECT ${USER_COLUMNS} FROM users WHERE removed_at IS NULL ORDER BY name`,
  markRemoved: "UPDATE users SET removed_at = $2, token_hash = NULL WHERE name = $1",
  // Through jobs_owner_queued.
  cancelQueued: `UPDATE jobs SET state = 'cancelled', outcome = $3, finished_at = $2
    WHERE owner = $1 AND state = 'queued' RETURNING id, batch_id`,
  // A batch with items still running is left to finish them; it then ends
  // failed, its queued items cancelled.
  cancelBatches: `UPDATE batches SET cancelled_at = $2
    WHERE owner = $1 AND finished_at IS NULL AND cancelled_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE batch_id = batches.id
        AND state IN ('leased', 'running'))`,
  setToken: "UPDATE users SET token_hash = $2 WHERE name = $1",
  jobOwner: "SELECT owner FROM jobs WHERE id = $1",
  batchOwner: "SELECT owner FROM batches WHERE id = $1",
  // The submit's quota check: the row locked, so two submits of one user
  // take turns and never pass the quota together.
  quota: "SELECT queued, max_queued FROM users WHERE name = $1 FOR UPDATE",
  // After the insert: the row is this transaction's already (the trigger's update).
  quotaAfterInsert: "SELECT queued, max_queued FROM users WHERE name = $1",
};

type LockedUser = UserRow & { removed_at: number | null };

/**
 * The max-queued check a submit runs inside its own transaction `tx`, its
 * user's row locked until the submit commits (coordinator/store/users.ts
 * holds the rule).
 */
export async function checkQueuedQuota(
  tx: Queryable,
  settings: PgContext["settings"],
  owner: string,
  submitted: number,
): Promise<void> {
  const [row] = await query<{ queued: number; max_queued: number | null }>(tx, USER_SQL.quota, [
    owner,
  ]);
  checkQuota(row, owner, submitted, settings);
}

/**
 * The max-queued check of a submit whose `submitted` jobs are already
 * inserted in `tx`: the insert trigger has counted them in the owner's row
 * and holds its lock until commit, so this reads the count without them
 * and refuses as checkQueuedQuota would (the caller's transaction then
 * rolls the insert back). A big batch's insert thus runs before the row is
 * locked, not while it is: leases and other submits wait on that row for
 * the quota read and the commit only.
 */
export async function checkQueuedQuotaAfterInsert(
  tx: Queryable,
  settings: PgContext["settings"],
  owner: string,
  submitted: number,
): Promise<void> {
  const [row] = await query<{ queued: number; max_queued: number | null }>(
    tx,
    USER_SQL.quotaAfterInsert,
    [owner],
  );
  checkQuota(row && { ...row, queued: row.queued - submitted }, owner, submitted, settings);
}

/** The users' verbs on PostgreSQL, as the SQLite store's (coordinator/store/users.ts). */
export function prepareUsers({ sql, settings }: PgContext) {
  const liveUser = async (tx: Queryable, name: string): Promise<LockedUser> => {
    const [found] = await query<LockedUser>(tx, USER_SQL.row, [name]);
    if (!found || found.removed_at !== null) throw notFound(`user ${name}`);
    return found;
  };
  const ownerOf = async (text: string, id: string) =>
    (await query<{ owner: string }>(sql, text, [id]))[0]?.owner;

  return {
    addUser: (user: AddUserRequest, tokenHash: string, now: number): Promise<void> =>
      writeTransaction(sql, async (tx) => {
        const [existing] = await query<LockedUser>(tx, USER_SQL.row, [user.name]);
        if (existing && existing.removed_at === null) {
          throw new ApiError("CONFLICT", `user ${user.name} exists already`);
        }
        const values = [
          user.name,
          tokenHash,
          now,
          user.weight ?? 1,
          user.maxRunning ?? null,
          user.maxQueued ?? null,
        ];
        await query(tx, existing ? USER_SQL.revive : USER_SQL.insert, values);
      }).catch((error: unknown) => {
        // Two adds of one new name at once: the second meets the primary key.
        if ((error as { code?: unknown }).code === "23505") {
          throw new ApiError("CONFLICT", `user ${user.name} exists already (or its token does)`);
        }
        throw error;
      }),

    async userByTokenHash(tokenHash: string): Promise<UserIdentity | undefined> {
      const [found] = await query<{ name: string; token_hash: string }>(sql, USER_SQL.byHash, [
        tokenHash,
      ]);
      if (!found) return undefined;
      const same = timingSafeEqual(Buffer.from(found.token_hash), Buffer.from(tokenHash));
      return same ? { name: found.name } : undefined;
    },

    listUsers: (now: number): Promise<UserInfo[]> =>
      readSnapshot(sql, async (tx) => {
        const rows = await query<UserRow>(tx, USER_SQL.live);
        const halfLife = halfLifeOf(settings);
        const total = rows.reduce((sum, user) => sum + usageNow(user, now, halfLife), 0);
        return rows.map((user) => userInfo(user, now, total, settings));
      }),

    removeUser: (name: string, now: number): Promise<RemovedUser> =>
      writeTransaction(sql, async (tx) => {
        refuseDefault(name, "change its token");
        await liveUser(tx, name);
        const cancelled = await query<{ id: string; batch_id: string | null }>(
          tx,
          USER_SQL.cancelQueued,
          [name, now, coordinatorOutcome("CANCELLED", `user ${name} was removed`, 0)],
        );
        await query(tx, USER_SQL.cancelBatches, [name, now]);
        await query(tx, USER_SQL.markRemoved, [name, now]);
        await settleBatches(
          tx,
          cancelled.map((job) => job.batch_id),
          now,
        );
        // Read after the cancels: the triggers have kept the counts.
        const after = await liveUserRow(tx, name);
        return { name, cancelled: cancelled.map((job) => job.id), running: after?.running ?? 0 };
      }),

    rotateUserToken: (name: string, tokenHash: string): Promise<void> =>
      writeTransaction(sql, async (tx) => {
        refuseDefault(name, "change its token");
        await liveUser(tx, name);
        await query(tx, USER_SQL.setToken, [name, tokenHash]);
      }),

    jobOwner: (id: string) => ownerOf(USER_SQL.jobOwner, id),
    batchOwner: (id: string) => ownerOf(USER_SQL.batchOwner, id),
  };
}

async function liveUserRow(tx: Queryable, name: string): Promise<LockedUser | undefined> {
  return (await query<LockedUser>(tx, USER_SQL.row, [name]))[0];
}
