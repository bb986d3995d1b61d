/**
 * `node dist/bench/programs.main.js`: the programs rows of `npm run bench`
 * alone (BENCH_SAMPLES rounds, default 30; BENCH_COMPARE_BIN=path/to/bin/labrun.js
 * adds the trivial submit through another build's CLI), printed as markdown.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { benchPrograms, renderPrograms } from "./e2e/programs.js";

const samples = Number(process.env.BENCH_SAMPLES ?? 30);
const workDir = mkdtempSync(join(tmpdir(), "labrun-bench-programs-"));
const loadAtStart = loadavg()[0]?.toFixed(1);
try {
  const bench = await benchPrograms(samples, workDir, (text) =>
    process.stderr.write(`bench: ${text}\n`),
  );
  process.stdout.write(
    `load average ${loadAtStart} at the start, ${loadavg()[0]?.toFixed(1)} at the end\n`,
  );
  process.stdout.write(renderPrograms(bench));
  process.stdout.write(`\n${JSON.stringify(bench, null, 2)}\n`);
} finally {
  rmSync(workDir, { recursive: true, force: true });
}
