/**
 * `node dist/bench/store-latency.main.js`: the warm single job on
 * PostgreSQL against SQLite alone (bench/e2e/store-latency.ts; real Docker,
 * BENCH_SAMPLES jobs on each, default 30), on the server of
 * LABRUN_TEST_PG_URL or scripts/ensure-postgres.sh. With
 * BENCH_COMPARE_DIST=/path/to/other/dist, that build's PostgreSQL cluster
 * runs in the same rounds (before/after at one load). Prints the rows, then
 * the result as JSON.
 */
import { loadavg } from "node:os";
import { ensureDevPostgres } from "../coordinator/store/postgres/devServer.js";
import { warmLatencyByStore } from "./e2e/store-latency.js";
import { renderStoreLatency } from "./report.js";

const url = process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres();
const load = loadavg()[0]?.toFixed(1);
const other = process.env.BENCH_COMPARE_DIST;
const result = await warmLatencyByStore(Number(process.env.BENCH_SAMPLES ?? 30), url, other);
process.stdout.write(`${renderStoreLatency(result).join("\n")}\n`);
if (result.postgresOther) {
  const { p50, p95 } = result.postgresOther;
  process.stdout.write(`| PostgreSQL, build ${other} | ${p50} | ${p95} |\n`);
}
process.stdout.write(
  `\nload average (1 min) at start ${load}, at end ${loadavg()[0]?.toFixed(1)}\n`,
);
process.stdout.write(`\n${JSON.stringify(result, null, 2)}\n`);
