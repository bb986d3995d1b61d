import type Database from "better-sqlite3";

/**
 * The schema, versioned: migration N brings `PRAGMA user_version` from N-1
 * to N. Append new ones; never edit one that has shipped (data dirs of
 * existing installs are at its version already).
 */
const MIGRATIONS: readonly string[] = [
  // 1: jobs and agents.
  `
  CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    filename TEXT NOT NULL,
    input TEXT NOT NULL,
    limits TEXT NOT NULL,
    labels TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    agent_id TEXT,
    node TEXT,
    lease_id TEXT,
    lease_expires_at INTEGER,
    completed_lease_id TEXT,
    outcome TEXT
  );
  CREATE INDEX jobs_by_state ON jobs (state, seq);
  CREATE INDEX jobs_by_lease ON jobs (lease_id);
  CREATE INDEX jobs_by_agent ON jobs (agent_id, state);
  CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    slots INTEGER NOT NULL,
    version TEXT NOT NULL,
    labels TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'ready',
    registered_at INTEGER NOT NULL,
    last_heartbeat_at INTEGER NOT NULL
  );
  `,
  // 2: startedAt now means "running" (first heartbeat); the lease time gets
  // its own column. The sweeper finds due leases through a partial index.
  `
  ALTER TABLE jobs ADD COLUMN leased_at INTEGER;
  UPDATE jobs SET leased_at = started_at WHERE lease_id IS NOT NULL;
  CREATE INDEX jobs_by_lease_deadline ON jobs (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
  `,
  // 3: admin stats count the jobs finished in the last minute and hour from
  // an index; a scan would read every row, programs included.
  `
  CREATE INDEX jobs_by_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
  `,
  // 4: an agent's largest limits (JSON, NULL = no bound): it is leased only
  // jobs within them.
  `
  ALTER TABLE agents ADD COLUMN max_limits TEXT;
  `,
  // 5: what all of an agent's jobs together may use (JSON {memoryMb?, cpus?},
  // NULL = no bound beyond its slots).
  `
  ALTER TABLE agents ADD COLUMN capacity TEXT;
  `,
  // 6: batches. The program is stored once, in the batch; each item is a job
  // row (source '') with its batch and index. Items are found through
  // partial indexes, so single jobs never scan past a big batch's rows:
  // queued singles by seq, a batch's items by index, by state and by end.
  // retries_left: runs again after a program failure (a batch's --retries).
  // final_counts: a finished batch's counts, kept so listing needs no scan.
  `
  CREATE TABLE batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    filename TEXT NOT NULL,
    limits TEXT NOT NULL,
    labels TEXT NOT NULL,
    total INTEGER NOT NULL,
    max_parallel INTEGER,
    retries INTEGER NOT NULL,
    isolate INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    cancelled_at INTEGER,
    finished_at INTEGER,
    final_state TEXT,
    final_counts TEXT
  );
  CREATE INDEX batches_active ON batches (seq) WHERE finished_at IS NULL;
  CREATE INDEX batches_by_finished ON batches (finished_at) WHERE finished_at IS NOT NULL;
  ALTER TABLE jobs ADD COLUMN batch_id TEXT;
  ALTER TABLE jobs ADD COLUMN item_index INTEGER;
  ALTER TABLE jobs ADD COLUMN retries_left INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX jobs_singles_queued ON jobs (seq) WHERE state = 'queued' AND batch_id IS NULL;
  CREATE INDEX jobs_singles ON jobs (seq) WHERE batch_id IS NULL;
  CREATE INDEX jobs_by_batch_index ON jobs (batch_id, item_index) WHERE batch_id IS NOT NULL;
  CREATE INDEX jobs_by_batch_state ON jobs (batch_id, state) WHERE batch_id IS NOT NULL;
  CREATE INDEX jobs_by_batch_finished ON jobs (batch_id, finished_at, item_index)
    WHERE batch_id IS NOT NULL AND finished_at IS NOT NULL;
  `,
  // 7: a job's (and a batch's) runtime (node | python) and the runtimes an agent offers (JSON
  // array, NULL = node only, as agents registered before runtimes): the lease
  // gives a job only to an agent that has its runtime.
  `
  ALTER TABLE jobs ADD COLUMN runtime TEXT NOT NULL DEFAULT 'node';
  ALTER TABLE agents ADD COLUMN runtimes TEXT;
  ALTER TABLE batches ADD COLUMN runtime TEXT NOT NULL DEFAULT 'node';
  `,
  // 8: users. Every job and batch has an owner; those from before are
  // 'default's (the shared client token). A user's row keeps, beside their
  // hashed token and quotas, what fair share and the quotas read on every
  // lease, so no lease counts jobs: queued and running (leased or running)
  // jobs, the sum of the running ones' leased_at (their container-seconds so
  // far, at any time, without reading them), and their finished usage with
  // the time it was decayed to (fairShare.ts charges it). Triggers keep the
  // counts, whichever verb moves a job. A removed user's row stays (removed_at,
  // no token), so their running jobs are still counted until they finish.
  // The audit log records admin actions.
  `
  CREATE TABLE users (
    name TEXT PRIMARY KEY,
    token_hash TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    removed_at INTEGER,
    weight REAL NOT NULL DEFAULT 1,
    max_running INTEGER,
    max_queued INTEGER,
    queued INTEGER NOT NULL DEFAULT 0,
    running INTEGER NOT NULL DEFAULT 0,
    running_since INTEGER NOT NULL DEFAULT 0,
    usage REAL NOT NULL DEFAULT 0,
    usage_at INTEGER NOT NULL DEFAULT 0
  );
  ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT 'default';
  ALTER TABLE batches ADD COLUMN owner TEXT NOT NULL DEFAULT 'default';
  INSERT INTO users (name, created_at, queued, running, running_since)
    SELECT 'default', CAST(strftime('%s', 'now') AS INTEGER) * 1000,
      (SELECT COUNT(*) FROM jobs WHERE state = 'queued'),
      (SELECT COUNT(*) FROM jobs WHERE state IN ('leased', 'running')),
      (SELECT COALESCE(SUM(leased_at), 0) FROM jobs WHERE state IN ('leased', 'running'));
  CREATE INDEX jobs_owner_singles ON jobs (owner, seq) WHERE batch_id IS NULL;
  CREATE INDEX jobs_owner_singles_queued ON jobs (owner, seq)
    WHERE state = 'queued' AND batch_id IS NULL;
  CREATE INDEX jobs_owner_queued ON jobs (owner, seq) WHERE state = 'queued';
  CREATE INDEX batches_by_owner ON batches (owner, seq);
  CREATE INDEX batches_active_by_owner ON batches (owner, seq)
    WHERE finished_at IS NULL AND cancelled_at IS NULL;
  CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs WHEN NEW.state = 'queued'
  BEGIN
    UPDATE users SET queued = queued + 1 WHERE name = NEW.owner;
  END;
  CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs
    WHEN OLD.state IS NOT NEW.state
  BEGIN
    UPDATE users SET
      queued = queued + (NEW.state = 'queued') - (OLD.state = 'queued'),
      running = running + (NEW.state IN ('leased', 'running')) - (OLD.state IN ('leased', 'running')),
      running_since = running_since
        + (CASE WHEN NEW.state IN ('leased', 'running') THEN COALESCE(NEW.leased_at, 0) ELSE 0 END)
        - (CASE WHEN OLD.state IN ('leased', 'running') THEN COALESCE(OLD.leased_at, 0) ELSE 0 END)
    WHERE name = NEW.owner;
  END;
  CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    WHEN OLD.state IN ('queued', 'leased', 'running')
  BEGIN
    UPDATE users SET
      queued = queued - (OLD.state = 'queued'),
      running = running - (OLD.state <> 'queued'),
      running_since = running_since
        - (CASE WHEN OLD.state <> 'queued' THEN COALESCE(OLD.leased_at, 0) ELSE 0 END)
    WHERE name = OLD.owner;
  END;
  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL
  );
  `,
  // 9: programs of several files (DESIGN.md §7): the files as JSON
  // [{path, content}] (NULL: source is the program), and filename holds the
  // entry.
  `
  ALTER TABLE jobs ADD COLUMN files TEXT;
  ALTER TABLE batches ADD COLUMN files TEXT;
  `,
  // 10: the coordinator's fixed tokens (client, admin, agent join), one row:
  // the first offered stay (claimTokens). An install from before has none
  // yet, so its coordinator's tokens.json is adopted on its next start.
  `
  CREATE TABLE fixed_tokens (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    client TEXT NOT NULL,
    admin TEXT NOT NULL,
    agent TEXT NOT NULL
  );
  `,
  // 11: named leases held for a while by one coordinator (the maintenance
  // leader, leadership.ts): who holds it and until when (epoch ms, by the
  // database's own clock). One coordinator per SQLite file, so it always
  // holds it; the table is there so both stores keep the same verbs.
  `
  CREATE TABLE leaders (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // 12: a queued job has no lease and no agent, so the lease and agent
  // indexes hold only the jobs that have them: a batch item is inserted into
  // two fewer indexes (of its seven). Every query of them names a lease or an
  // agent (`lease_id = ?`, `agent_id = ?`), which implies IS NOT NULL, so the
  // planner still takes them.
  `
  DROP INDEX jobs_by_lease;
  CREATE INDEX jobs_by_lease ON jobs (lease_id) WHERE lease_id IS NOT NULL;
  DROP INDEX jobs_by_agent;
  CREATE INDEX jobs_by_agent ON jobs (agent_id, state) WHERE agent_id IS NOT NULL;
  `,
  // 13: a single job's program (source, files) in a table of its own, keyed
  // by the job's seq. SQLite rewrites a whole row, overflow pages and all, on
  // every UPDATE: with a 2 MiB bundle in the jobs row, each change of state
  // (leased, running, finished) wrote its megabytes again (~125 ms of CPU and
  // 8 MiB of WAL per job). The jobs row keeps source '' and files NULL; a
  // batch's items keep reading their batch's program.
  `
  CREATE TABLE job_programs (
    seq INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    files TEXT
  );
  INSERT INTO job_programs (seq, source, files)
    SELECT seq, source, files FROM jobs WHERE batch_id IS NULL;
  UPDATE jobs SET source = '', files = NULL WHERE batch_id IS NULL;
  CREATE TRIGGER job_programs_delete AFTER DELETE ON jobs WHEN OLD.batch_id IS NULL
  BEGIN
    DELETE FROM job_programs WHERE seq = OLD.seq;
  END;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to SCHEMA_VERSION, one transaction per migration. */
export function migrate(db: Database.Database): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `the database is at schema version ${current}, newer than this labrun knows (${SCHEMA_VERSION}); upgrade labrun`,
    );
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version] ?? "");
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
