/**
 * `node dist/bench/postgres-driver.main.js`: the PostgreSQL driver rows of
 * `npm run bench` alone, on LABRUN_TEST_PG_URL or the server of
 * scripts/ensure-postgres.sh (BENCH_PG_SAMPLES round trips, default 2000).
 */
import { loadavg } from "node:os";
import { ensureDevPostgres } from "../coordinator/store/postgres/devServer.js";
import { benchPostgresDriver, renderPostgresDriver } from "./postgres-driver.js";

const url = process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres("labrun_bench");
const samples = Number(process.env.BENCH_PG_SAMPLES ?? 2_000);
const load = loadavg()[0]?.toFixed(1);
const bench = await benchPostgresDriver(url, samples, samples);
process.stdout.write(renderPostgresDriver(bench));
process.stdout.write(
  `\nload average (1 min) at start ${load}, at end ${loadavg()[0]?.toFixed(1)}\n`,
);
process.stdout.write(`\n${JSON.stringify(bench, null, 2)}\n`);
