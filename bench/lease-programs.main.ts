/**
 * `node dist/bench/lease-programs.main.js`: the rows of `npm run bench` on a
 * lease against the size of the programs queued (bench/lease-programs.ts),
 * alone; PostgreSQL's on LABRUN_TEST_PG_URL or the server of
 * scripts/ensure-postgres.sh, unless BENCH_SKIP_POSTGRES=1.
 */
import { ensureDevPostgres } from "../coordinator/store/postgres/devServer.js";
import { benchLeaseByProgramSize, renderLeaseByProgramSize } from "./lease-programs.js";

const url =
  process.env.BENCH_SKIP_POSTGRES === "1"
    ? undefined
    : (process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres("labrun_bench"));
const rows = await benchLeaseByProgramSize(url, Number(process.env.BENCH_LEASE_ROUNDS ?? 200));
process.stdout.write(
  `${renderLeaseByProgramSize(rows).join("\n")}\n\n${JSON.stringify(rows, null, 2)}\n`,
);
