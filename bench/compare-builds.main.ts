/**
 * `node dist/bench/compare-builds.main.js /path/to/other/dist [more dists…]`:
 * the side-by-side rows against another build alone (bench/compare-builds.ts;
 * BENCH_COMPARE_ROUNDS, default 3; BENCH_COMPARE_SAMPLES warm HTTP jobs,
 * default 20, 0 leaves out the Docker row). BENCH_COMPARE_THIS_DIST puts
 * another build in this build's place (a commit against its parent). Given
 * several other dists, each is compared in turn with this build.
 * BENCH_COMPARE_CAPACITY=0 runs only the single-job rows (no Docker either
 * with BENCH_COMPARE_SAMPLES=0). Prints each
 * comparison's rows, then the JSON of them all.
 */
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { type ComparedRow, type CompareResult, compareBuilds } from "./compare-builds.js";
import { renderComparison } from "./report.js";

const given = process.argv.slice(2);
const others = given.length > 0 ? given : [process.env.BENCH_COMPARE_DIST ?? ""];
if (others.some((dist) => dist === "")) {
  process.stderr.write("usage: compare-builds.main.js /path/to/other/dist [more dists…]\n");
  process.exit(2);
}
const thisDist = process.env.BENCH_COMPARE_THIS_DIST;
const results: CompareResult[] = [];
for (const other of others) {
  const result = await compareBuilds(
    resolve(other),
    {
      rounds: Number(process.env.BENCH_COMPARE_ROUNDS ?? 3),
      latencySamples: Number(process.env.BENCH_COMPARE_SAMPLES ?? 20),
      ...(thisDist ? { thisDist: resolve(thisDist) } : {}),
      capacity: process.env.BENCH_COMPARE_CAPACITY !== "0",
    },
    () => loadavg()[0] ?? 0,
  );
  results.push(result);
  // The table says "this build"; name it when it is another one.
  const named = result.thisDist ? [`"This build" is \`${result.thisDist}\`.`] : [];
  const { coordinatorCpuMsPerJob: cpu, singleJob } = result;
  const row = (name: string, r: ComparedRow | null) =>
    r === null
      ? []
      : `| ${name} | ${r.thisMedian} ${r.unit} (${r.thisBuild.join(", ")}) | ${r.otherMedian} ${r.unit} (${r.otherBuild.join(", ")}) | ${r.ratio} |`;
  const more = [
    row("coordinator CPU per job in those rounds (lower is better)", cpu),
    row("warm single job without Docker: coordinator CPU per job", singleJob.cpuMsPerJob),
    row("warm single job without Docker: submit answered, p50", singleJob.submitP50Ms),
    row("warm single job without Docker: result answered, p50", singleJob.resultP50Ms),
    row("warm single job without Docker: coordinator's share, p50", singleJob.totalP50Ms),
  ];
  process.stdout.write(`${[...named, ...renderComparison(result), ...more.flat()].join("\n")}\n\n`);
}
process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
