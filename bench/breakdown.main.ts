/**
 * `node dist/bench/breakdown.main.js`: only the warm job's breakdown (the
 * part of `npm run bench` that says where each millisecond goes), for
 * working on it. BENCH_SAMPLES jobs (default 30).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { connectDocker } from "../agent/docker.js";
import { ensureRunnerImage } from "../agent/sandbox/image.js";
import { containerOptions, DEFAULT_SANDBOX } from "../agent/sandbox/options.js";
import { DEFAULT_LIMITS } from "../protocol/index.js";
import { HOP_DESCRIPTIONS, measureWarmBreakdown } from "./e2e/breakdown.js";
import { launchCluster } from "./e2e/processes.js";

const docker = await connectDocker();
const image = await ensureRunnerImage(docker, pino({ level: "silent" }));
const options = containerOptions({
  image,
  jobId: "bench",
  agentName: "bench",
  limits: DEFAULT_LIMITS,
  sandbox: DEFAULT_SANDBOX,
});
const result = await measureWarmBreakdown(
  docker,
  options,
  Number(process.env.BENCH_SAMPLES ?? 30),
  (trace) => launchCluster({ slots: 4, warm: 4, trace }),
  mkdtempSync(join(tmpdir(), "labrun-bench-trace-")),
);
process.stdout.write(`total p50 ${result.totalMs} ms over ${result.jobs} jobs\n`);
for (const [hop, ms] of Object.entries(result.hopsMs)) {
  process.stdout.write(
    `${String(ms).padStart(7)}  ${hop}: ${HOP_DESCRIPTIONS[hop as keyof typeof HOP_DESCRIPTIONS]}\n`,
  );
}
process.stdout.write(`attach echo (Docker's part of container): ${result.attachEchoMs} ms\n`);
