/**
 * `node dist/bench/interleaved.main.js`: only the interleaved rows of
 * `npm run bench` (`node -e 1`, the warm HTTP job, `labrun submit`,
 * `--version`, `status ID`, `jobs`, round by round on one warm cluster) and
 * their ratios to `node -e 1`, for working on start-up. BENCH_SAMPLES rounds
 * (default 30). Prints the load average beside them: other work on the
 * machine weighs on every row alike, but not on the ratios' noise.
 * BENCH_COMPARE_BIN=path/to/other/bin/labrun.js adds that build's submit,
 * status and jobs to the same rounds (before/after side by side).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { interleavedLatency } from "./e2e/latency.js";
import { launchCluster } from "./e2e/processes.js";
import { round } from "./stats.js";

const rounds = Number(process.env.BENCH_SAMPLES ?? 30);
const load = () => loadavg().map((value) => round(value, 1));
const loadAtStart = load();
const workDir = mkdtempSync(join(tmpdir(), "labrun-bench-interleaved-"));
const cluster = await launchCluster({ slots: 4, warm: 4 });
let rows: Awaited<ReturnType<typeof interleavedLatency>>;
try {
  await sleep(3_000); // the pool fills
  rows = await interleavedLatency(cluster, rounds, workDir, process.env.BENCH_COMPARE_BIN);
} finally {
  await cluster.stop();
  rmSync(workDir, { recursive: true, force: true });
}
const base = rows.nodeE.p50;
process.stdout.write(
  `${rounds} rounds; load average ${loadAtStart.join(" ")} at the start, ${load().join(" ")} at the end\n`,
);
for (const [name, row] of Object.entries(rows)) {
  if (row === undefined) continue;
  process.stdout.write(
    `${name.padEnd(17)} p50 ${String(row.p50).padStart(8)} ms  p95 ${String(row.p95).padStart(8)} ms  ÷ node -e 1 ${round(row.p50 / base, 3)}\n`,
  );
}
