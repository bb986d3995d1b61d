import { changes, type PgContext } from "./database.js";

const EXTEND = `UPDATE jobs SET lease_expires_at = $1
  WHERE lease_expires_at IS NOT NULL AND lease_expires_at < $1`;

/**
 * Pushes every live lease's deadline to at least `until` (the coordinator
 * itself was away, and its agents could not renew meanwhile). One statement.
 */
export function prepareExtendLeases({ sql }: PgContext) {
  return (until: number): Promise<number> => changes(sql, EXTEND, [until]);
}
