import { changes, type PgContext, query } from "./database.js";

// now() is the server's clock: the coordinators' own clocks never decide who leads.
const HOLD = `INSERT INTO leaders (name, holder, expires_at)
  VALUES ($1, $2, now() + $3 * interval '1 millisecond')
  ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
  WHERE leaders.holder = EXCLUDED.holder OR leaders.expires_at <= now()
  RETURNING holder`;
const RELEASE = "DELETE FROM leaders WHERE name = $1 AND holder = $2";

/**
 * Named leases one coordinator keeps by renewing them (the maintenance
 * leader, cluster/leader.ts). One upsert whose update is conditional: of
 * two coordinators racing for a free or expired row, the second waits on
 * the first's row lock, then finds it held and changes nothing.
 */
export function prepareLeadership({ sql }: PgContext) {
  return {
    async holdLeadership(name: string, holder: string, ttlMs: number): Promise<boolean> {
      const rows = await query(sql, HOLD, [name, holder, Math.trunc(ttlMs)]);
      return rows.length > 0;
    },
    async releaseLeadership(name: string, holder: string): Promise<void> {
      await changes(sql, RELEASE, [name, holder]);
    },
  };
}
