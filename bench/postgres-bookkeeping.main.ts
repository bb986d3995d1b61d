/**
 * `node dist/bench/postgres-bookkeeping.main.js [--agents 4] [--slots 256]
 * [--duration-ms 8000]`: the batch bookkeeping rows by store (SQLite, then
 * PostgreSQL with 1 and with 2 coordinators) alone, on the server of
 * LABRUN_TEST_PG_URL or scripts/ensure-postgres.sh (~45 s, no Docker).
 * BENCH_BOOKKEEPING_ONLY=postgres-2 (or sqlite-1, postgres-1; comma
 * separated) runs only those. BENCH_PG_SYNCHRONOUS_COMMIT=off runs the
 * bench's databases without waiting for the WAL fsync at commit, to show
 * what that wait costs (the store always waits). Prints the rows, then the
 * result as JSON.
 */
import { loadavg } from "node:os";
import { ensureDevPostgres } from "../coordinator/store/postgres/devServer.js";
import { capacityArgs } from "./coordinator/main-args.js";
import { type BookkeepingConfiguration, benchBookkeeping } from "./postgres-bookkeeping.js";
import { renderBookkeeping } from "./report.js";

const { agents, slots, durationMs } = capacityArgs("unused");
const only = process.env.BENCH_BOOKKEEPING_ONLY?.split(",").map(
  (name): BookkeepingConfiguration => {
    const [store, coordinators] = name.trim().split("-");
    if ((store !== "sqlite" && store !== "postgres") || !Number(coordinators)) {
      process.stderr.write(`BENCH_BOOKKEEPING_ONLY: not sqlite-N or postgres-N: ${name}\n`);
      process.exit(2);
    }
    return { store, coordinators: Number(coordinators) };
  },
);
const url = process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres();
const load = loadavg()[0]?.toFixed(1);
const result = await benchBookkeeping(url, {
  ...(agents ? { agents } : {}),
  ...(slots ? { slots } : {}),
  ...(durationMs ? { durationMs } : {}),
  ...(only ? { configurations: only } : {}),
  ...(process.env.BENCH_PG_SYNCHRONOUS_COMMIT
    ? { databaseSettings: { synchronous_commit: process.env.BENCH_PG_SYNCHRONOUS_COMMIT } }
    : {}),
});
process.stdout.write(`${renderBookkeeping(result).join("\n")}\n`);
process.stdout.write(
  `\nload average (1 min) at start ${load}, at end ${loadavg()[0]?.toFixed(1)}\n`,
);
process.stdout.write(`\n${JSON.stringify(result, null, 2)}\n`);
