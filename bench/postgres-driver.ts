/**
 * The PostgreSQL driver rows: `pg` (node-postgres) against `postgres`
 * (postgres.js), each on the server scripts/ensure-postgres.sh runs, on the
 * three shapes the store's hot paths have:
 *
 * - a prepared single-row lease-like `UPDATE … RETURNING`, one round trip at a time;
 * - a burst of the same statement, all sent at once on one connection (a
 *   driver that pipelines sends them back to back; one that does not waits
 *   for each answer before the next);
 * - an `INSERT … SELECT FROM unnest(…)` of 1,000 rows in one statement.
 *
 * The store ships with one driver (docs/decisions.md); the other is imported
 * only if it is installed (`npm install --no-save postgres` or `pg`), and its
 * rows say "not installed" otherwise.
 */
import { performance } from "node:perf_hooks";
import { type Distribution, distribution, round } from "./stats.js";

export interface DriverRows {
  /** Serial prepared UPDATE … RETURNING, ms per round trip. */
  singleMs: Distribution;
  /** `burst` statements sent at once on one connection: statements per second. */
  burstPerSecond: number;
  /** One 1,000-row unnest() insert, ms per statement. */
  unnestInsertMs: Distribution;
}

export interface PostgresDriverBench {
  server: string;
  samples: number;
  burst: number;
  drivers: Record<"pg" | "postgres", DriverRows | null>;
}

/** One driver as the bench drives it: a single connection, the three shapes. */
interface BenchDriver {
  exec(sql: string): Promise<void>;
  lease(seq: number, leaseId: string): Promise<unknown>;
  insert(ids: string[], inputs: string[]): Promise<void>;
  close(): Promise<void>;
}

const LEASE_SQL = `UPDATE bench_jobs SET lease_id = $2, attempts = attempts + 1,
  lease_expires_at = lease_expires_at + 1 WHERE seq = $1 RETURNING id, attempts, input`;
const INSERT_SQL = `INSERT INTO bench_jobs (id, input, lease_expires_at)
  SELECT id, input, 0 FROM unnest($1::text[], $2::text[]) AS t(id, input)`;

/** The slice of node-postgres's Client the bench uses (it is not a dependency: no types). */
interface PgClient {
  connect(): Promise<void>;
  query(config: string | { name: string; text: string; values: unknown[] }): Promise<unknown>;
  end(): Promise<void>;
}

async function openPg(url: string): Promise<BenchDriver | null> {
  // A name in a variable: TypeScript does not look for a package that is not installed.
  const name = "pg";
  const pg = (await import(name).catch(() => null)) as {
    default: { Client: new (config: { connectionString: string }) => PgClient };
  } | null;
  if (!pg) return null;
  const client = new pg.default.Client({ connectionString: url });
  await client.connect();
  return {
    exec: async (sql) => void (await client.query(sql)),
    // A name makes node-postgres parse once and reuse the prepared statement.
    lease: (seq, leaseId) =>
      client.query({ name: "bench-lease", text: LEASE_SQL, values: [seq, leaseId] }),
    insert: async (ids, inputs) =>
      void (await client.query({ name: "bench-insert", text: INSERT_SQL, values: [ids, inputs] })),
    close: () => client.end(),
  };
}

async function openPostgresJs(url: string): Promise<BenchDriver | null> {
  const module = await import("postgres").catch(() => null);
  if (!module) return null;
  // max 1: the same single connection as the pg client; prepare is its default.
  const sql = module.default(url, { max: 1, prepare: true, onnotice: () => {} });
  return {
    exec: async (text) => void (await sql.unsafe(text)),
    lease: (seq, leaseId) => sql.unsafe(LEASE_SQL, [seq, leaseId], { prepare: true }),
    insert: async (ids, inputs) =>
      void (await sql.unsafe(INSERT_SQL, [ids, inputs] as never, { prepare: true })),
    close: () => sql.end({ timeout: 5 }),
  };
}

const ROWS = 1_000;
/** Rounds, alternating which driver goes first: the machine's load changes between them. */
const ROUNDS = 4;

/** One round of the three shapes on one driver, its samples added to `into`. */
async function round1(
  driver: BenchDriver,
  samples: number,
  burst: number,
  round: number,
  into: { single: number[]; bursts: number[]; inserts: number[] },
): Promise<void> {
  for (let i = 0; i < samples; i++) {
    const began = performance.now();
    await driver.lease((i % ROWS) + 1, `l_${round}_${i}`);
    into.single.push(performance.now() - began);
  }
  const began = performance.now();
  await Promise.all(
    Array.from({ length: burst }, (_, i) => driver.lease((i % ROWS) + 1, `b_${round}_${i}`)),
  );
  into.bursts.push(burst / ((performance.now() - began) / 1000));
  const ids = Array.from({ length: ROWS }, (_, i) => `j_${round}_${i}`);
  const inputs = ids.map((_, i) => JSON.stringify({ i }));
  for (let k = 0; k < 5; k++) {
    const t = performance.now();
    await driver.insert(
      ids.map((id) => `${id}_${k}`),
      inputs,
    );
    into.inserts.push(performance.now() - t);
  }
}

async function prepareTable(driver: BenchDriver): Promise<void> {
  await driver.exec("DROP TABLE IF EXISTS bench_jobs");
  await driver.exec(`CREATE TABLE bench_jobs (seq bigserial PRIMARY KEY, id text NOT NULL,
    input text NOT NULL, attempts int NOT NULL DEFAULT 0, lease_id text, lease_expires_at bigint)`);
  const ids = Array.from({ length: ROWS }, (_, i) => `j_seed_${i}`);
  await driver.insert(ids, ids);
  // Warm-up: the statements are prepared and the pages are in cache.
  for (let i = 0; i < 50; i++) await driver.lease((i % ROWS) + 1, `w_${i}`);
}

/**
 * Both drivers (those installed) on the server at `url`, in `ROUNDS`
 * alternating rounds; each uses its own database schema's bench_jobs table.
 */
export async function benchPostgresDriver(
  url: string,
  samples = 2_000,
  burst = 2_000,
): Promise<PostgresDriverBench> {
  const opened: { name: "pg" | "postgres"; driver: BenchDriver }[] = [];
  for (const [name, open] of [
    ["pg", openPg],
    ["postgres", openPostgresJs],
  ] as const) {
    const driver = await open(url);
    if (driver) opened.push({ name, driver });
  }
  const collected = new Map(
    opened.map(({ name }) => [
      name,
      { single: [] as number[], bursts: [] as number[], inserts: [] as number[] },
    ]),
  );
  try {
    for (const { name, driver } of opened) {
      await driver.exec(`CREATE SCHEMA IF NOT EXISTS bench_${name}`);
      await driver.exec(`SET search_path TO bench_${name}`);
      await prepareTable(driver);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? opened : [...opened].reverse();
      for (const { name, driver } of order) {
        const into = collected.get(name);
        if (into) await round1(driver, Math.ceil(samples / ROUNDS), burst, round, into);
      }
    }
    for (const { name, driver } of opened) await driver.exec(`DROP SCHEMA bench_${name} CASCADE`);
  } finally {
    for (const { driver } of opened) await driver.close();
  }
  const drivers: PostgresDriverBench["drivers"] = { pg: null, postgres: null };
  for (const [name, { single, bursts, inserts }] of collected) {
    const sorted = [...bursts].sort((a, b) => a - b);
    drivers[name] = {
      singleMs: distribution(single),
      burstPerSecond: round(sorted[Math.floor(sorted.length / 2)] ?? 0, 0),
      unnestInsertMs: distribution(inserts),
    };
  }
  return { server: url.replace(/\/\/[^@]*@/, "//"), samples, burst, drivers };
}
/** The rows as the README's markdown table. */
export function renderPostgresDriver(bench: PostgresDriverBench): string {
  const cell = (rows: DriverRows | null, pick: (rows: DriverRows) => string) =>
    rows ? pick(rows) : "not installed";
  const { pg, postgres } = bench.drivers;
  const line = (what: string, pick: (rows: DriverRows) => string) =>
    `| ${what} | ${cell(pg, pick)} | ${cell(postgres, pick)} |`;
  return [
    "",
    `PostgreSQL drivers, one connection each (${bench.server}):`,
    "",
    "| Shape | `pg` (node-postgres) | `postgres` (postgres.js) |",
    "| --- | ---: | ---: |",
    line(
      `prepared UPDATE … RETURNING, serial (${bench.samples} in ${ROUNDS} rounds): p50 / p95 ms`,
      (r) => `${r.singleMs.p50} / ${r.singleMs.p95}`,
    ),
    line(
      `the same, ${bench.burst} sent at once: statements/s (median round)`,
      (r) => `${r.burstPerSecond}`,
    ),
    line(
      "INSERT … unnest() of 1,000 rows: p50 / max ms",
      (r) => `${r.unnestInsertMs.p50} / ${r.unnestInsertMs.max}`,
    ),
    "",
  ].join("\n");
}
