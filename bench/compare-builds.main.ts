/**
 * `node dist/bench/compare-builds.main.js /path/to/other/dist`: the
 * side-by-side rows against another build alone (bench/compare-builds.ts;
 * BENCH_COMPARE_ROUNDS, default 3; BENCH_COMPARE_SAMPLES warm HTTP jobs,
 * default 20, 0 leaves out the Docker row). Prints the rows, then the JSON.
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { compareBuilds } from "./compare-builds.js";
import { renderComparison } from "./report.js";

const dist = process.argv[2] ?? process.env.BENCH_COMPARE_DIST;
if (!dist) {
  process.stderr.write("usage: compare-builds.main.js /path/to/other/dist\n");
  process.exit(2);
}
const result = await compareBuilds(
  resolve(dist),
  {
    rounds: Number(process.env.BENCH_COMPARE_ROUNDS ?? 3),
    latencySamples: Number(process.env.BENCH_COMPARE_SAMPLES ?? 20),
  },
  () => loadavg()[0] ?? 0,
);
process.stdout.write(
  `${renderComparison(result).join("\n")}\n\n${JSON.stringify(result, null, 2)}\n`,
);
