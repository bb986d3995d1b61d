import { query, type Sql, writeTransaction } from "./database.js";
import { STATEMENT_TRIGGERS_MIGRATION } from "./statementTriggers.js";

/**
 * The PostgreSQL schema, versioned like the SQLite one: migration N brings
 * labrun_schema.version from N-1 to N. Append new ones; never edit one that
 * has shipped. Columns mirror the SQLite store's (coordinator/store/migrations.ts)
 * so both stores read rows the same way: times are epoch ms (int8), JSON is text.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the whole schema of SQLite's migration 9 (users, programs of several files).
  `
  CREATE TABLE jobs (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    state text NOT NULL,
    source text NOT NULL,
    filename text NOT NULL,
    runtime text NOT NULL DEFAULT 'node',
    input text NOT NULL,
    limits text NOT NULL,
    labels text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    created_at bigint NOT NULL,
    leased_at bigint,
    started_at bigint,
    finished_at bigint,
    agent_id text,
    node text,
    lease_id text,
    lease_expires_at bigint,
    completed_lease_id text,
    outcome text,
    batch_id text,
    item_index integer,
    retries_left integer NOT NULL DEFAULT 0,
    owner text NOT NULL DEFAULT 'default',
    -- JSON [{path, content}]; NULL: source is the program (filename holds the entry).
    files text
  );
  -- The ready set, in partial indexes: a lease reads queued rows only, never
  -- past the finished ones, and these indexes stay as small as the queue.
  CREATE INDEX jobs_singles_queued ON jobs (seq) WHERE state = 'queued' AND batch_id IS NULL;
  CREATE INDEX jobs_items_queued ON jobs (batch_id, seq) WHERE state = 'queued' AND batch_id IS NOT NULL;
  CREATE INDEX jobs_by_state ON jobs (state);
  CREATE INDEX jobs_by_lease ON jobs (lease_id) WHERE lease_id IS NOT NULL;
  CREATE INDEX jobs_by_agent ON jobs (agent_id, state) WHERE agent_id IS NOT NULL;
  CREATE INDEX jobs_by_lease_deadline ON jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
  CREATE INDEX jobs_by_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
  CREATE INDEX jobs_singles ON jobs (seq) WHERE batch_id IS NULL;
  CREATE INDEX jobs_singles_by_state ON jobs (state, seq) WHERE batch_id IS NULL;
  CREATE INDEX jobs_by_batch_index ON jobs (batch_id, item_index) WHERE batch_id IS NOT NULL;
  CREATE INDEX jobs_by_batch_state ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
  CREATE INDEX jobs_by_batch_finished ON jobs (batch_id, finished_at, item_index)
    WHERE batch_id IS NOT NULL AND finished_at IS NOT NULL;
  -- A batch's failed items by index (the batch page lists the first ones).
  CREATE INDEX jobs_failed_items ON jobs (batch_id, item_index)
    WHERE batch_id IS NOT NULL AND state = 'failed';
  -- A hot queue table: every job is inserted, updated three or four times and
  -- deleted by retention. The default autovacuum (20% of the table dead)
  -- lets dead rows and index bloat pile up between runs on a big table, so
  -- it runs after 1% (and at least 500 rows), without cost-based pauses.
  -- fillfactor leaves room on each page for updates of the same row.
  ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 85
  );
  CREATE TABLE agents (
    id text PRIMARY KEY,
    name text NOT NULL,
    hostname text NOT NULL,
    slots integer NOT NULL,
    version text NOT NULL,
    labels text NOT NULL,
    max_limits text,
    capacity text,
    runtimes text[],
    token_hash text NOT NULL UNIQUE,
    state text NOT NULL DEFAULT 'ready',
    registered_at bigint NOT NULL,
    last_heartbeat_at bigint NOT NULL
  );
  CREATE TABLE batches (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text NOT NULL UNIQUE,
    source text NOT NULL,
    filename text NOT NULL,
    runtime text NOT NULL DEFAULT 'node',
    limits text NOT NULL,
    labels text NOT NULL,
    total integer NOT NULL,
    max_parallel integer,
    retries integer NOT NULL,
    isolate boolean NOT NULL,
    created_at bigint NOT NULL,
    cancelled_at bigint,
    finished_at bigint,
    final_state text,
    final_counts text,
    owner text NOT NULL DEFAULT 'default',
    files text
  );
  CREATE INDEX batches_active ON batches (seq) WHERE finished_at IS NULL;
  CREATE INDEX batches_by_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;
  -- Users, as SQLite's migration 8 has them: beside the hashed token and the
  -- quotas, what fair share and the quotas read on every lease (queued and
  -- running counts, the running jobs' summed leased_at, the finished usage
  -- and when it was decayed to), so no lease counts jobs. The triggers below
  -- keep the counts whichever verb moves a job; jobs_charge_usage charges a
  -- run's container-seconds. A removed user's row stays (removed_at, no token).
  CREATE TABLE users (
    name text PRIMARY KEY,
    token_hash text UNIQUE,
    created_at bigint NOT NULL,
    removed_at bigint,
    weight float8 NOT NULL DEFAULT 1,
    max_running integer,
    max_queued integer,
    queued integer NOT NULL DEFAULT 0,
    running integer NOT NULL DEFAULT 0,
    running_since bigint NOT NULL DEFAULT 0,
    usage float8 NOT NULL DEFAULT 0,
    usage_at bigint NOT NULL DEFAULT 0
  );
  INSERT INTO users (name, created_at)
    VALUES ('default', (extract(epoch FROM now()) * 1000)::bigint);
  CREATE INDEX jobs_owner_singles ON jobs (owner, seq) WHERE batch_id IS NULL;
  CREATE INDEX jobs_owner_singles_queued ON jobs (owner, seq)
    WHERE state = 'queued' AND batch_id IS NULL;
  CREATE INDEX jobs_owner_queued ON jobs (owner, seq) WHERE state = 'queued';
  CREATE INDEX batches_by_owner ON batches (owner, seq);
  CREATE INDEX batches_active_by_owner ON batches (owner, seq)
    WHERE finished_at IS NULL AND cancelled_at IS NULL;
  -- One row trigger for every way a job moves: its owner's queued and running
  -- counts and running_since follow the old and the new state.
  CREATE FUNCTION labrun_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    old_queued int := 0; old_running int := 0; old_since bigint := 0;
    new_queued int := 0; new_running int := 0; new_since bigint := 0;
  BEGIN
    IF TG_OP <> 'INSERT' THEN
      old_queued := (OLD.state = 'queued')::int;
      old_running := (OLD.state IN ('leased', 'running'))::int;
      old_since := CASE WHEN old_running = 1 THEN COALESCE(OLD.leased_at, 0) ELSE 0 END;
    END IF;
    IF TG_OP <> 'DELETE' THEN
      new_queued := (NEW.state = 'queued')::int;
      new_running := (NEW.state IN ('leased', 'running'))::int;
      new_since := CASE WHEN new_running = 1 THEN COALESCE(NEW.leased_at, 0) ELSE 0 END;
    END IF;
    IF old_queued = new_queued AND old_running = new_running AND old_since = new_since THEN
      RETURN NULL;
    END IF;
    UPDATE users SET
      queued = queued + new_queued - old_queued,
      running = running + new_running - old_running,
      running_since = running_since + new_since - old_since
    WHERE name = CASE WHEN TG_OP = 'DELETE' THEN OLD.owner ELSE NEW.owner END;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.state = 'queued') EXECUTE FUNCTION labrun_count_jobs();
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, leased_at ON jobs
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.leased_at IS DISTINCT FROM NEW.leased_at)
    EXECUTE FUNCTION labrun_count_jobs();
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.state IN ('queued', 'leased', 'running')) EXECUTE FUNCTION labrun_count_jobs();
  -- fairShare.ts's charged(), in SQL: the old usage decayed to the run's end
  -- plus the run, or (a run that ended before the last charge) the run
  -- decayed to the last charge. The unit test checks it against charged().
  CREATE FUNCTION labrun_charged(usage float8, usage_at bigint, at bigint, seconds float8,
      half_life_ms float8) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
      WHEN at >= usage_at THEN
        (CASE WHEN usage = 0 OR at <= usage_at THEN usage
              ELSE usage * power(2, -(at - usage_at) / half_life_ms) END) + GREATEST(seconds, 0)
      ELSE usage + GREATEST(seconds, 0) * power(2, -(usage_at - at) / half_life_ms)
    END
  $$;
  -- A run is charged to its owner when its job leaves leased/running, by
  -- whichever verb, with the half-life and lease TTL of the coordinator that
  -- moved it (session settings labrun.half_life_ms and labrun.lease_ttl_ms,
  -- set on every connection of its pool, as SQLite's TEMP trigger holds
  -- them). The run ends at finished_at; a job queued again (lost node) has
  -- none, and is charged up to its last renewal (deadline − TTL).
  CREATE FUNCTION labrun_charge_usage() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    half_life float8 := COALESCE(NULLIF(current_setting('labrun.half_life_ms', true), ''), '3600000')::float8;
    ttl bigint := COALESCE(NULLIF(current_setting('labrun.lease_ttl_ms', true), ''), '0')::float8::bigint;
    ended bigint := COALESCE(NEW.finished_at, OLD.lease_expires_at - ttl, OLD.leased_at, 0);
  BEGIN
    UPDATE users SET
      usage = labrun_charged(usage, usage_at, ended,
        GREATEST(0, ended - COALESCE(OLD.leased_at, ended)) / 1000.0, half_life),
      usage_at = GREATEST(usage_at, ended)
    WHERE name = NEW.owner;
    RETURN NULL;
  END $$;
  CREATE TRIGGER jobs_charge_usage AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.state IN ('leased', 'running') AND NEW.state NOT IN ('leased', 'running'))
    EXECUTE FUNCTION labrun_charge_usage();
  CREATE TABLE audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    details text NOT NULL
  );
  `,
  // 2: the coordinators' fixed tokens (client, admin, agent join), one row
  // that every coordinator on the database uses: the first offered stay
  // (claimTokens).
  `
  CREATE TABLE fixed_tokens (
    id integer PRIMARY KEY CHECK (id = 1),
    client text NOT NULL,
    admin text NOT NULL,
    agent text NOT NULL
  );
  `,
  // 3: the users' count and charge triggers once per statement (statementTriggers.ts).
  STATEMENT_TRIGGERS_MIGRATION,
  // 4: named leases held for a while by one coordinator: the maintenance
  // leader (leadership.ts), elected by the database's own clock, so the
  // coordinators' clocks never decide who leads.
  `
  CREATE TABLE leaders (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_at timestamptz NOT NULL
  );
  `,
];

export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Any constant, the same in every coordinator: the key of the migration lock. */
const MIGRATION_LOCK = 0x6c616272; // "labr"

/**
 * Brings the database to PG_SCHEMA_VERSION in one transaction under a
 * transaction-scoped advisory lock: coordinators that start together wait
 * for the first, then find the schema current and do nothing. DDL is
 * transactional in PostgreSQL, so a failed migration leaves nothing behind.
 */
export async function migrate(sql: Sql): Promise<void> {
  await writeTransaction(sql, async (tx) => {
    await query(tx, "SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await query(tx, "CREATE TABLE IF NOT EXISTS labrun_schema (version integer NOT NULL)");
    const [row] = await query<{ version: number }>(tx, "SELECT version FROM labrun_schema");
    const current = row?.version ?? 0;
    if (current > PG_SCHEMA_VERSION) {
      throw new Error(
        `the database is at schema version ${current}, newer than this labrun knows (${PG_SCHEMA_VERSION}); upgrade labrun`,
      );
    }
    if (current === PG_SCHEMA_VERSION) return;
    for (let version = current; version < PG_SCHEMA_VERSION; version++) {
      // Several statements in one: the simple protocol (not prepared).
      await (tx as Sql).unsafe(MIGRATIONS[version] ?? "");
    }
    if (row) await query(tx, "UPDATE labrun_schema SET version = $1", [PG_SCHEMA_VERSION]);
    else await query(tx, "INSERT INTO labrun_schema (version) VALUES ($1)", [PG_SCHEMA_VERSION]);
  });
}
