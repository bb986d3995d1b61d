import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { StoreSettings } from "../store/interfaces.js";
import { ensureDevPostgres } from "../store/postgres/devServer.js";
import { openPostgresStore, type PostgresStore } from "../store/postgres/index.js";

/**
 * A real PostgreSQL for a test file: LABRUN_TEST_PG_URL, or the server of
 * scripts/ensure-postgres.sh (started if need be). Each file that calls
 * `usePostgresDatabase()` gets a database of its own (a random name,
 * dropped after the file); each store a test opens lives in a fresh schema
 * of it (dropped after the test), the way the SQLite suites give each store
 * a temp dir. Not part of the build.
 */
export function usePostgresDatabase() {
  const name = `labrun_test_${randomBytes(6).toString("hex")}`;
  let admin: postgres.Sql | undefined;
  let url = "";
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    const server = process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres();
    admin = postgres(server, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const parsed = new URL(server);
    parsed.pathname = `/${name}`;
    url = parsed.toString();
  }, 120_000);

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  afterAll(async () => {
    await admin?.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin?.end({ timeout: 5 });
  }, 60_000);

  /** A new, empty schema of the file's database (dropped after the test). */
  async function newSchema(): Promise<string> {
    const schema = `s_${randomBytes(6).toString("hex")}`;
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await sql.unsafe(`CREATE SCHEMA ${schema}`);
    cleanups.push(async () => {
      await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await sql.end({ timeout: 5 });
    });
    return schema;
  }

  return {
    /** The file's database. */
    url: () => url,
    newSchema,
    /** Runs `cleanup` after the current test. */
    onCleanup: (cleanup: () => Promise<void>) => void cleanups.push(cleanup),
    /** A store on `schema` (default: a new one), closed after the test. */
    async openStore(
      schema?: string,
      settings: StoreSettings = { leaseTtlMs: 1_000, maxAttempts: 2 },
      pool: { max?: number } = {},
    ): Promise<PostgresStore> {
      const store = await openPostgresStore(url, settings, {
        ...pool,
        schema: schema ?? (await newSchema()),
      });
      cleanups.push(async () => {
        await store.close().catch(() => {});
      });
      return store;
    },
    /** A plain connection to the file's database, in `schema`, closed after the test. */
    connect(schema: string): postgres.Sql {
      const sql = postgres(url, {
        max: 1,
        onnotice: () => {},
        connection: { search_path: schema },
      });
      cleanups.push(() => sql.end({ timeout: 5 }));
      return sql;
    },
  };
}
