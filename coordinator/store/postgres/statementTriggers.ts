/**
 * PostgreSQL migration: the users' count and usage-charge triggers of
 * migration 1, once per statement instead of once per row.
 *
 * Why: the batched verbs move hundreds or thousands of jobs in one
 * statement (a 5,000-item insert, a 256-job lease, a result group), and a
 * row trigger ran a PL/pgSQL call and an UPDATE of the owner's users row for
 * each of them: EXPLAIN ANALYZE put the triggers at about 70% of a
 * 2,000-item insert and half of a 256-result finish, and every row trigger
 * wrote a new version of the same users row (more WAL, more dead tuples on
 * the hottest row of the database). A statement trigger with transition
 * tables (REFERENCING OLD/NEW TABLE) sums the moves by owner and updates
 * each owner's row once.
 *
 * The sums are the row triggers' sums. The usage charge folds the runs that
 * ended in one statement into one labrun_charged() call: a charge is the
 * run's seconds decayed to the user's reference time, so the charges of runs
 * ending at t_i sum to S = Σ seconds_i · 2^-((M − t_i)/h) at M = max t_i,
 * and labrun_charged(usage, usage_at, M, S, h) is what charging them one by
 * one gives (in any order: the decay is linear), up to float rounding.
 *
 * Limits: a statement trigger on UPDATE takes no column list and no WHEN, so
 * it runs on every UPDATE of jobs (a lease renewal too) and finds no moved
 * row there: a join of the statement's rows by seq, and nothing written.
 */
export const STATEMENT_TRIGGERS_MIGRATION = `
  DROP TRIGGER jobs_count_insert ON jobs;
  DROP TRIGGER jobs_count_update ON jobs;
  DROP TRIGGER jobs_count_delete ON jobs;
  DROP TRIGGER jobs_charge_usage ON jobs;
  DROP FUNCTION labrun_count_jobs();
  DROP FUNCTION labrun_charge_usage();
  -- Queued jobs inserted, by owner.
  CREATE FUNCTION labrun_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE users SET queued = users.queued + added.n
    FROM (SELECT owner, COUNT(*) AS n FROM inserted_jobs WHERE state = 'queued' GROUP BY owner)
      AS added
    WHERE users.name = added.owner;
    RETURN NULL;
  END $$;
  -- Jobs deleted while queued or running, by owner.
  CREATE FUNCTION labrun_jobs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    UPDATE users SET
      queued = users.queued - gone.queued,
      running = users.running - gone.running,
      running_since = users.running_since - gone.since
    FROM (
      SELECT owner,
        COUNT(*) FILTER (WHERE state = 'queued') AS queued,
        COUNT(*) FILTER (WHERE state IN ('leased', 'running')) AS running,
        COALESCE(SUM(COALESCE(leased_at, 0)) FILTER (WHERE state IN ('leased', 'running')), 0)
          AS since
      FROM deleted_jobs WHERE state IN ('queued', 'leased', 'running') GROUP BY owner
    ) AS gone
    WHERE users.name = gone.owner;
    RETURN NULL;
  END $$;
  -- Jobs that moved (state or leased_at), by owner: the counts follow the old
  -- and the new state, and the runs that left leased/running are charged, with
  -- the half-life and lease TTL of the coordinator that moved them (session
  -- settings, as migration 1's trigger read them). A run ends at finished_at;
  -- a job queued again (lost node) has none, and is charged up to its last
  -- renewal (deadline − TTL).
  CREATE FUNCTION labrun_jobs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    half_life float8 := COALESCE(NULLIF(current_setting('labrun.half_life_ms', true), ''), '3600000')::float8;
    ttl bigint := COALESCE(NULLIF(current_setting('labrun.lease_ttl_ms', true), ''), '0')::float8::bigint;
  BEGIN
    WITH changed AS (
      SELECT n.owner,
        (n.state = 'queued')::int - (o.state = 'queued')::int AS queued,
        (n.state IN ('leased', 'running'))::int - (o.state IN ('leased', 'running'))::int AS running,
        (CASE WHEN n.state IN ('leased', 'running') THEN COALESCE(n.leased_at, 0) ELSE 0 END)
          - (CASE WHEN o.state IN ('leased', 'running') THEN COALESCE(o.leased_at, 0) ELSE 0 END)
          AS since,
        o.state IN ('leased', 'running') AND n.state NOT IN ('leased', 'running') AS ran,
        COALESCE(n.finished_at, o.lease_expires_at - ttl, o.leased_at, 0) AS ended,
        o.leased_at
      FROM old_jobs AS o JOIN new_jobs AS n ON n.seq = o.seq
      WHERE o.state IS DISTINCT FROM n.state OR o.leased_at IS DISTINCT FROM n.leased_at
    ), moved AS (
      -- leased → running (a heartbeat) changes no count: that owner's row is
      -- neither written nor locked, as the row trigger returned early.
      SELECT * FROM changed WHERE queued <> 0 OR running <> 0 OR since <> 0 OR ran
    ), runs AS (
      SELECT owner, ended, GREATEST(0, ended - COALESCE(leased_at, ended)) / 1000.0 AS seconds,
        MAX(ended) OVER (PARTITION BY owner) AS last
      FROM moved WHERE ran
    ), charges AS (
      SELECT owner, MAX(last) AS last, SUM(seconds * power(2, -(last - ended) / half_life)) AS seconds
      FROM runs GROUP BY owner
    ), counts AS (
      SELECT owner, SUM(queued) AS queued, SUM(running) AS running, SUM(since) AS since
      FROM moved GROUP BY owner
    )
    UPDATE users SET
      queued = users.queued + counts.queued,
      running = users.running + counts.running,
      running_since = users.running_since + counts.since,
      usage = CASE WHEN charges.owner IS NULL THEN users.usage
        ELSE labrun_charged(users.usage, users.usage_at, charges.last, charges.seconds, half_life) END,
      usage_at = CASE WHEN charges.owner IS NULL THEN users.usage_at
        ELSE GREATEST(users.usage_at, charges.last) END
    FROM counts LEFT JOIN charges ON charges.owner = counts.owner
    WHERE users.name = counts.owner;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION labrun_jobs_inserted();
  CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION labrun_jobs_updated();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION labrun_jobs_deleted();
`;
