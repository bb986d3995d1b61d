import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, afterEach, beforeAll } from "vitest";
import type { Store, StoreSettings } from "../store/interfaces.js";
import { ensureDevPostgres } from "../store/postgres/devServer.js";
import { openPostgresStore } from "../store/postgres/index.js";
import type { OpenStoreUnderTest } from "../store/suite/index.js";

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
    const server = serverUrl();
    admin = postgres(server, { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      await admin.unsafe(`CREATE DATABASE ${name}`);
    } catch (error) {
      // Never a skip: a PostgreSQL test without a server fails, saying how to get one.
      throw new Error(
        `no PostgreSQL to test against at ${server} (${(error as Error).message}): run \`npm run ensure-postgres\` (scripts/ensure-postgres.sh), or point LABRUN_TEST_PG_URL at a server`,
      );
    }
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

  /** A new, empty schema of the file's database, and how to drop it. */
  async function createSchema(): Promise<{ schema: string; drop: () => Promise<void> }> {
    const schema = `s_${randomBytes(6).toString("hex")}`;
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    await sql.unsafe(`CREATE SCHEMA ${schema}`);
    return {
      schema,
      drop: async () => {
        await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await sql.end({ timeout: 5 });
      },
    };
  }

  /** A new, empty schema of the file's database (dropped after the test). */
  async function newSchema(): Promise<string> {
    const { schema, drop } = await createSchema();
    cleanups.push(drop);
    return schema;
  }

  /**
   * The store suite's factory: a store in a fresh schema; `reopen()` opens
   * another pool on the same schema, as a coordinator restarted on the same
   * database would; `dispose()` drops the schema.
   */
  const openUnderTest: OpenStoreUnderTest = async (settings) => {
    const { schema, drop } = await createSchema();
    const open = () => openPostgresStore(url, settings, { schema, max: 4 });
    return { store: await open(), hooks: { reopen: open }, dispose: drop };
  };

  return {
    /** The file's database. */
    url: () => url,
    newSchema,
    openUnderTest,
    /** Runs `cleanup` after the current test. */
    onCleanup: (cleanup: () => Promise<void>) => void cleanups.push(cleanup),
    /** A store on `schema` (default: a new one), closed after the test. */
    async openStore(
      schema?: string,
      settings: StoreSettings = { leaseTtlMs: 1_000, maxAttempts: 2 },
      pool: { max?: number } = {},
    ): Promise<Store> {
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

/** LABRUN_TEST_PG_URL, or the server of scripts/ensure-postgres.sh (started if need be). */
function serverUrl(): string {
  const given = process.env.LABRUN_TEST_PG_URL;
  if (given) return given;
  try {
    return ensureDevPostgres();
  } catch (error) {
    throw new Error(
      `scripts/ensure-postgres.sh could not start PostgreSQL (${(error as Error).message}): run \`npm run ensure-postgres\` to see why, or point LABRUN_TEST_PG_URL at a server`,
    );
  }
}
