import { readdirSync, readFileSync } from "node:fs";
import postgres from "postgres";
import { round } from "../stats.js";
import { processCpuSeconds } from "./cpu.js";

/**
 * What one PostgreSQL database did over a bench window, per item: the
 * server's own counters read before and after, so the row says where the
 * time went (commits, rows written, WAL and its fsyncs, server CPU) rather
 * than only how long it took.
 *
 * Limits: pg_stat_wal is the whole server's (another database busy on the
 * same server adds to it); pg_stat_database is this database's, and each
 * backend flushes its counts at most once a second, so a 10 s window is
 * about right, not exact.
 */
export interface PgWindow {
  commitsPerItem: number;
  rowsWrittenPerItem: number;
  /** Rows written per item by table (inserted + updated + deleted), the busiest first. */
  rowsWrittenByTable: Record<string, number>;
  /** WAL records and bytes per item. */
  walRecordsPerItem: number;
  walBytesPerItem: number;
  /** WAL fsyncs per second (one per commit unless commits share a flush). */
  walSyncsPerSecond: number;
  /** Share of the window the backends spent in WAL fsync (summed over backends). */
  walSyncMsPerSecond: number;
  /** CPU cores: this database's backends, and the server's own processes (WAL writer, checkpointer, autovacuum…). */
  backendCores: number;
  serverCores: number;
}

interface Snapshot {
  at: number;
  commits: number;
  rowsWritten: number;
  byTable: Map<string, number>;
  walRecords: number;
  walBytes: number;
  walSyncs: number;
  walSyncMs: number;
  backendCpu: number;
  serverCpu: number;
}

/**
 * A database of its own on the server of `serverUrl` (any database URL
 * there), empty, with `track_wal_io_timing` on for its sessions; the
 * returned `drop` removes it. The bench's coordinators each get one, so no
 * run meets another's rows.
 */
export async function freshDatabase(
  serverUrl: string,
  name: string,
  settings: Record<string, string> = {},
): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = new URL(serverUrl);
  admin.pathname = "/postgres";
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await sql.unsafe(`CREATE DATABASE ${name}`);
  // Per database, so only these coordinators' backends time their WAL fsyncs.
  await sql.unsafe(`ALTER DATABASE ${name} SET track_wal_io_timing = on`);
  for (const [setting, value] of Object.entries(settings)) {
    await sql.unsafe(`ALTER DATABASE ${name} SET ${setting} = '${value.replaceAll("'", "''")}'`);
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await sql.end({ timeout: 5 });
    },
  };
}

/** A connection to the database the bench's coordinators use, for its statistics only. */
export class PgWatch {
  readonly #sql: postgres.Sql;

  constructor(
    url: string,
    private readonly database: string,
  ) {
    this.#sql = postgres(url, { max: 1, onnotice: () => {} });
  }

  /** Starts a window; the returned function ends it, given the items done meanwhile. */
  async start(): Promise<(items: number) => Promise<PgWindow>> {
    const before = await this.#snapshot();
    return async (items) => {
      const after = await this.#snapshot();
      const seconds = (after.at - before.at) / 1000;
      const per = (value: number, by: number) => round(value / Math.max(1, by), 2);
      return {
        commitsPerItem: per(after.commits - before.commits, items),
        rowsWrittenPerItem: per(after.rowsWritten - before.rowsWritten, items),
        rowsWrittenByTable: Object.fromEntries(
          [...after.byTable]
            .map(
              ([table, rows]) =>
                [table, per(rows - (before.byTable.get(table) ?? 0), items)] as const,
            )
            .filter(([, rows]) => rows > 0)
            .sort((a, b) => b[1] - a[1]),
        ),
        walRecordsPerItem: per(after.walRecords - before.walRecords, items),
        walBytesPerItem: Math.round((after.walBytes - before.walBytes) / Math.max(1, items)),
        walSyncsPerSecond: Math.round((after.walSyncs - before.walSyncs) / seconds),
        walSyncMsPerSecond: Math.round((after.walSyncMs - before.walSyncMs) / seconds),
        backendCores: round((after.backendCpu - before.backendCpu) / seconds, 2),
        serverCores: round((after.serverCpu - before.serverCpu) / seconds, 2),
      };
    };
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }

  async #snapshot(): Promise<Snapshot> {
    // Our own backend's counts go out now, not within the next second.
    await this.#sql`SELECT pg_stat_force_next_flush()`;
    const [db] = await this.#sql<{ commits: string; written: string }[]>`
      SELECT xact_commit AS commits, tup_inserted + tup_updated + tup_deleted AS written
      FROM pg_stat_database WHERE datname = ${this.database}`;
    const [wal] = await this.#sql<
      { records: string; bytes: string; syncs: string; sync_ms: number }[]
    >`SELECT wal_records AS records, wal_bytes AS bytes, wal_sync AS syncs, wal_sync_time AS sync_ms
      FROM pg_stat_wal`;
    const tables = await this.#sql<{ relname: string; written: string }[]>`
      SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS written FROM pg_stat_user_tables`;
    const cpu = serverCpu(this.database);
    return {
      at: performance.now(),
      commits: Number(db?.commits ?? 0),
      rowsWritten: Number(db?.written ?? 0),
      byTable: new Map(tables.map((row) => [row.relname, Number(row.written)])),
      walRecords: Number(wal?.records ?? 0),
      walBytes: Number(wal?.bytes ?? 0),
      walSyncs: Number(wal?.syncs ?? 0),
      walSyncMs: Number(wal?.sync_ms ?? 0),
      backendCpu: cpu.backends,
      serverCpu: cpu.server,
    };
  }
}

/**
 * CPU seconds of the PostgreSQL processes on this machine, from /proc: the
 * backends connected to `database` (their title names it) and the server's
 * own processes (postmaster, WAL writer, checkpointer, autovacuum…).
 * Another database's backends are not counted.
 */
function serverCpu(database: string): { backends: number; server: number } {
  let backends = 0;
  let server = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, "utf8").trim();
      if (comm !== "postgres") continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      const seconds = processCpuSeconds(Number(entry));
      // Backend titles read "postgres: <user> <database> <client> <state>".
      if (/^postgres: \S+ \S+ \d/.test(title)) {
        if (title.split(" ")[2] === database) backends += seconds;
      } else {
        server += seconds;
      }
    } catch {
      // It exited between the listing and the read.
    }
  }
  return { backends, server };
}
