import { type StoreContext, writeTransaction } from "./database.js";

/**
 * Pushes every live lease's deadline to at least `until`. Used when the
 * coordinator itself was away (restarted, or stalled past the sweep
 * interval): its agents could not renew while it was gone, and their leases
 * must not expire before they have had a heartbeat's chance to.
 */
export function prepareExtendLeases({ db }: StoreContext) {
  const extend = db.prepare(
    `UPDATE jobs SET lease_expires_at = @until
     WHERE lease_expires_at IS NOT NULL AND lease_expires_at < @until`,
  );
  return writeTransaction(db, function extendLeases(until: number): number {
    return extend.run({ until }).changes;
  });
}
