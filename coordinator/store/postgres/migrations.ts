import { query, type Sql, writeTransaction } from "./database.js";

/**
 * The PostgreSQL schema, versioned like the SQLite one: migration N brings
 * labrun_schema.version from N-1 to N. Append new ones; never edit one that
 * has shipped. Columns mirror the SQLite store's (coordinator/store/migrations.ts)
 * so both stores read rows the same way: times are epoch ms (int8), JSON is text.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the whole schema of SQLite's migration 7.
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
    retries_left integer NOT NULL DEFAULT 0
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
    final_counts text
  );
  CREATE INDEX batches_active ON batches (seq) WHERE finished_at IS NULL;
  CREATE INDEX batches_by_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;
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
