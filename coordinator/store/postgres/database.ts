import { availableParallelism } from "node:os";
import postgres from "postgres";
import type { StoreSettings } from "../interfaces.js";

/** int8 (bigserial seqs, epoch-ms times, COUNT(*)) as a JS number: every value here is below 2^53. */
const TYPES = {
  bigint: {
    to: 20,
    from: [20],
    serialize: (value: number) => String(value),
    parse: (text: string) => Number(text),
  },
};

/** The pool, as every verb module queries it (a transaction's handle has the same calls). */
export type Sql = postgres.Sql<{ bigint: number }>;
/**
 * What a statement runs on: the pool, or one transaction of it (the two
 * calls of postgres.js the verbs use, kept narrow so types stay simple).
 */
export type Queryable = Sql | Transaction;

/** A transaction's handle, as the verbs use it. */
interface Transaction {
  unsafe(text: string, params: unknown[], options: { prepare: boolean }): PromiseLike<unknown>;
  array(values: unknown[], type: number): unknown;
}

const narrow = (on: Queryable) => on as unknown as Transaction;

/** What every verb module is prepared against. */
export interface PgContext {
  sql: Sql;
  settings: StoreSettings;
}

export interface PoolOptions {
  /** Connections at most (default: 2 per core, between 4 and 16). */
  max?: number;
  /** Seconds a transaction may sit idle before the server ends it (default 30; the store passes half the lease TTL). */
  idleInTransactionSeconds?: number;
  /** The schema the store's tables live in (default: the server's search_path, `public`). */
  schema?: string;
  /**
   * Session settings of every connection (custom `labrun.*` ones): what this
   * coordinator's triggers read, as the SQLite store's TEMP trigger holds them.
   */
  session?: Record<string, string>;
}

/**
 * A connection pool on `url`.
 *
 * - Pool size: PostgreSQL on the same few cores gains nothing from more
 *   connections than about twice the cores; each coordinator pipelines its
 *   statements on them (postgres.js), so a small pool carries its load.
 * - `idle_in_transaction_session_timeout`: a coordinator that stalls inside
 *   a transaction (SIGSTOP, a lost socket) cannot hold row locks on the hot
 *   jobs table for ever; the server ends its session and the locks go.
 * - Statements are prepared once per connection (postgres.js's default).
 */
export function openPool(url: string, options: PoolOptions = {}): Sql {
  const max = options.max ?? Math.min(16, Math.max(4, 2 * availableParallelism()));
  return postgres(url, {
    max,
    types: TYPES,
    prepare: true,
    idle_timeout: 60,
    connect_timeout: 10,
    // Seconds before a connection that closed with an error connects again.
    // postgres.js's default grows with a retry count the whole pool shares
    // (3^n / 100 s, up to 20 s): a PostgreSQL restart closes every
    // connection at once, and the coordinator then waited 10-20 s after the
    // server was back (test/faults/pg-restart.test.ts). A short jittered
    // delay costs a dead server one refused connect per connection per
    // ~0.3 s, and the coordinator answers 503 meanwhile.
    backoff: () => 0.1 + Math.random() * 0.4,
    onnotice: () => {},
    connection: {
      application_name: "labrun-coordinator",
      idle_in_transaction_session_timeout: (options.idleInTransactionSeconds ?? 30) * 1000,
      ...(options.schema === undefined ? {} : { search_path: options.schema }),
      ...options.session,
    },
  }) as unknown as Sql;
}

/** SQLSTATEs after which a transaction is safe to run again from the start. */
const RETRYABLE = new Set(["40001", "40P01"]); // serialization failure, deadlock detected

/**
 * Runs `verb` in one READ COMMITTED transaction, again from the start (up to
 * 5 times) when the server aborted it for a deadlock or a serialization
 * failure: verbs that lock rows in different orders (a job then its batch,
 * a batch then its items) may meet, and the server breaks the tie by
 * aborting one of them, which then simply runs again.
 */
export async function writeTransaction<T>(
  sql: Sql,
  verb: (tx: Queryable) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await sql.begin((tx) => verb(tx as unknown as Transaction))) as T;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (attempt >= 5 || typeof code !== "string" || !RETRYABLE.has(code)) throw error;
    }
  }
}

/** Runs `read` in one REPEATABLE READ, read-only transaction: every statement sees one snapshot. */
export async function readSnapshot<T>(sql: Sql, read: (tx: Queryable) => Promise<T>): Promise<T> {
  return (await sql.begin("isolation level repeatable read read only", (tx) =>
    read(tx as unknown as Transaction),
  )) as T;
}

/** A JS array as a typed PostgreSQL array parameter. */
export const textArray = (on: Queryable, values: readonly string[]) =>
  narrow(on).array([...values], 25);
export const bigintArray = (on: Queryable, values: readonly number[]) =>
  narrow(on).array([...values], 20);
export const intArray = (on: Queryable, values: readonly number[]) =>
  narrow(on).array([...values], 23);

/**
 * Runs one statement, prepared once per connection and kept: the SQL text
 * is a constant beside its verb, its parameters are $1, $2, …
 *
 * The promise counts as handled from the start. Verbs pipeline: they send
 * several statements, then await them in order. When an earlier one
 * fails, the verb throws before it awaits the later ones, and those fail
 * as well ("transaction aborted", or the connection's reset when the
 * server restarts). Left unhandled, their rejections would end the
 * coordinator (they did once in CI, in pg-restart.test.ts). Whoever awaits
 * the promise still gets its error.
 */
export function query<Row>(
  on: Queryable,
  text: string,
  params: readonly unknown[] = [],
): Promise<Row[]> {
  const rows = Promise.resolve(narrow(on).unsafe(text, [...params], { prepare: true }));
  rows.catch(() => {});
  return rows as Promise<Row[]>;
}

/** Rows a statement changed (UPDATE / DELETE without RETURNING). */
export async function changes(
  on: Queryable,
  text: string,
  params: readonly unknown[] = [],
): Promise<number> {
  const result = (await query(on, text, params)) as unknown as { count: number };
  return result.count;
}
