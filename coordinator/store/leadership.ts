import type { StoreContext } from "./database.js";

/** The database's own clock in epoch ms (SQLite has no server: the clock of the host it runs on). */
const NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/**
 * Named leases one holder keeps by renewing them (the maintenance leader,
 * cluster/leader.ts), as the PostgreSQL store's leadership.ts: the row is
 * taken when there is none, it has expired, or it is the holder's already.
 * One statement (an upsert whose update is conditional), so two holders
 * racing for it never both win.
 */
export function prepareLeadership({ db }: StoreContext) {
  const hold = db
    .prepare(
      `INSERT INTO leaders (name, holder, expires_at) VALUES (@name, @holder, ${NOW_MS} + @ttlMs)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leaders.holder = excluded.holder OR leaders.expires_at <= ${NOW_MS}
       RETURNING holder`,
    )
    .pluck();
  const release = db.prepare("DELETE FROM leaders WHERE name = @name AND holder = @holder");
  return {
    holdLeadership(name: string, holder: string, ttlMs: number): boolean {
      return hold.get({ name, holder, ttlMs: Math.trunc(ttlMs) }) !== undefined;
    },
    releaseLeadership(name: string, holder: string): void {
      release.run({ name, holder });
    },
  };
}
