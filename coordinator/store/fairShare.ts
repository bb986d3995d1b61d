import type Database from "better-sqlite3";

/**
 * Fair share: the one place its formula lives (README "Fair share").
 *
 * A user's usage is the container-seconds their jobs ran (leased to the end),
 * forgotten with a half-life h: a second run t ms ago counts 2^(−t/h).
 * Running jobs count in full for the time they have run so far. The lease
 * gives the next job to the user with queued work and the lowest
 *
 *   priority = usage ÷ weight
 *
 * ties broken by fewer jobs running ÷ weight (so two fresh users alternate),
 * then by name. Within a user, work goes oldest first, round-robin across
 * their batches and single jobs (lease.ts).
 */

/** Default half-life: usage of an hour ago counts half. */
export const DEFAULT_HALF_LIFE_MS = 3_600_000;

/** What fair share reads of a user (a users row). */
export interface UsageRow {
  weight: number;
  running: number;
  /** Sum of the running jobs' leased_at (epoch ms). */
  running_since: number;
  /** Finished usage in container-seconds, decayed to `usage_at`. */
  usage: number;
  usage_at: number;
}

/** `usage` as decayed from `from` to `to` (never grows: a `to` before `from` keeps it). */
export function decayed(usage: number, from: number, to: number, halfLifeMs: number): number {
  if (to <= from || usage === 0) return usage;
  return usage * 2 ** (-(to - from) / halfLifeMs);
}

/**
 * Finished usage after a job that ended at `at` ran `seconds`: the old usage
 * decayed to `at` plus the run, kept as of max(usageAt, at). A run that ended
 * before the last charge (results settle out of order) is decayed to it instead.
 */
export function charged(
  usage: number,
  usageAt: number,
  at: number,
  seconds: number,
  halfLifeMs: number,
): number {
  const run = Math.max(0, seconds);
  return at >= usageAt
    ? decayed(usage, usageAt, at, halfLifeMs) + run
    : usage + decayed(run, at, usageAt, halfLifeMs);
}

/** Container-seconds as of `now`: finished usage decayed, plus the running jobs so far. */
export function usageNow(row: UsageRow, now: number, halfLifeMs: number): number {
  const runningMs = Math.max(0, row.running * now - row.running_since);
  return decayed(row.usage, row.usage_at, now, halfLifeMs) + runningMs / 1000;
}

/** usage ÷ weight: the lowest goes first. */
export const priorityOf = (row: UsageRow, now: number, halfLifeMs: number) =>
  usageNow(row, now, halfLifeMs) / row.weight;

/** The lease's order between two users: priority, then running ÷ weight, then name. */
export function fairOrder(
  a: { priority: number; running: number; weight: number; name: string },
  b: { priority: number; running: number; weight: number; name: string },
): number {
  return (
    a.priority - b.priority ||
    a.running / a.weight - b.running / b.weight ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/**
 * Charges a job's run to its owner whenever it leaves leased/running, by
 * whichever verb: a trigger of this connection (TEMP: it holds this
 * coordinator's half-life and lease TTL), calling `charged` above. The run
 * ends at finished_at; a job queued again (lost node, retried sandbox) has
 * none, and is charged up to its last renewal (deadline − TTL).
 */
export function installUsageCharge(
  db: Database.Database,
  halfLifeMs: number,
  leaseTtlMs: number,
): void {
  db.function("labrun_charged", { deterministic: true }, (usage, usageAt, at, seconds) =>
    charged(Number(usage), Number(usageAt), Number(at), Number(seconds), halfLifeMs),
  );
  const end = `COALESCE(NEW.finished_at, OLD.lease_expires_at - ${Math.trunc(leaseTtlMs)}, OLD.leased_at, 0)`;
  db.exec(`
    DROP TRIGGER IF EXISTS temp.jobs_charge_usage;
    CREATE TEMP TRIGGER jobs_charge_usage AFTER UPDATE OF state ON main.jobs
      WHEN OLD.state IN ('leased', 'running') AND NEW.state NOT IN ('leased', 'running')
    BEGIN
      UPDATE main.users SET
        usage = labrun_charged(usage, usage_at, ${end},
          MAX(0, ${end} - COALESCE(OLD.leased_at, ${end})) / 1000.0),
        usage_at = MAX(usage_at, ${end})
      WHERE name = NEW.owner;
    END;
  `);
}
