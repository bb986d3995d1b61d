/**
 * `node dist/bench/map-throughput.main.js [--items 2000] [--slots 2]
 * [--churn-runs 200]`: the `labrun map` row alone (real coordinator and agent
 * processes, real Docker) against `docker run --rm` churn at the same
 * parallelism; prints the result as JSON on stdout and its README rows on
 * stderr.
 */
import { parseArgs } from "node:util";
import pino from "pino";
import { connectDocker } from "../agent/docker.js";
import { ensureRunnerImage } from "../agent/sandbox/image.js";
import { containerOptions, DEFAULT_SANDBOX } from "../agent/sandbox/options.js";
import { DEFAULT_LIMITS } from "../protocol/index.js";
import { dockerRunFlags } from "./e2e/baselines.js";
import { benchMapThroughput } from "./e2e/map-throughput.js";
import { renderMapThroughput } from "./report.js";

const { values } = parseArgs({
  options: {
    items: { type: "string", default: "2000" },
    slots: { type: "string", default: "2" },
    "churn-runs": { type: "string", default: "200" },
  },
});
const count = (name: string, text: string): number => {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive integer, not ${text}\n`);
    process.exit(2);
  }
  return value;
};

const docker = await connectDocker();
const image = await ensureRunnerImage(docker, pino({ level: "silent" }));
const flags = dockerRunFlags(
  containerOptions({
    image,
    jobId: "bench",
    agentName: "bench",
    limits: DEFAULT_LIMITS,
    sandbox: DEFAULT_SANDBOX,
  }),
);
const result = await benchMapThroughput({
  items: count("items", values.items),
  slots: count("slots", values.slots),
  churnRuns: count("churn-runs", values["churn-runs"]),
  flags,
  image,
});
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
process.stderr.write(`${renderMapThroughput(result).join("\n")}\n`);
