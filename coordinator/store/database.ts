import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { StoreSettings } from "./interfaces.js";
import { migrate } from "./migrations.js";

/** What every verb module is prepared against. */
export interface StoreContext {
  db: Database.Database;
  settings: StoreSettings;
}

/**
 * Opens (or creates) `<dataDir>/labrun.db` and brings its schema up to date.
 *
 * - WAL: readers never block the writer, and a commit is one append.
 * - `synchronous = NORMAL`: a commit is in the WAL (the OS page cache) when
 *   the call returns, so it survives a kill -9 of the coordinator; only an OS
 *   crash or power loss may lose the last few commits. FULL would fsync on
 *   every commit for that rarer case and cost most of the queue's throughput.
 * - busy_timeout: a second process on the same file (`sqlite3` for a look)
 *   makes writers wait instead of failing at once.
 * - `temp_store = MEMORY`: a statement that fires a trigger (the users'
 *   counts on every job insert and state change) keeps a statement journal,
 *   so it can be undone alone; on disk that journal was a file in /var/tmp
 *   written for every such statement, ~40 µs per job row, 4× the row's own
 *   cost (bench/batch-capacity: 3,700 → 11,000+ items/s). In memory it is a
 *   few pages per statement.
 * - WAL checkpoints run beside the verbs, on a worker thread's connection
 *   (checkpointer.ts, started by the store), not inside their commits.
 */
export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(join(dataDir, "labrun.db"));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("temp_store = MEMORY");
    migrate(db);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * Wraps a verb in a write transaction that takes the write lock up front
 * (BEGIN IMMEDIATE): a read-then-write verb never fails half-way because
 * another connection wrote in between; it waits for busy_timeout instead.
 */
export function writeTransaction<F extends (...args: never[]) => unknown>(
  db: Database.Database,
  verb: F,
): F {
  // `.immediate` is a plain function (no `this`), nested calls become savepoints.
  return db.transaction(verb).immediate as unknown as F;
}
