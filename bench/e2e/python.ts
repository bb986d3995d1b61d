import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import pino from "pino";
import { containerOptions, DEFAULT_SANDBOX } from "../../agent/sandbox/options.js";
import { ensurePythonImage } from "../../agent/sandbox/python-image.js";
import { LabrunClient } from "../../client/api.js";
import { DEFAULT_LIMITS, type SubmitJobRequest } from "../../protocol/index.js";
import type { Distribution } from "../stats.js";
import { dockerRunFlags, runCommand } from "./baselines.js";
import { sample } from "./latency.js";
import { type ClusterProcesses, launchCluster } from "./processes.js";

const TRIVIAL_PYTHON = "def main():\n    return 1\n";
const TRIVIAL_NODE = "exports.main = () => 1";
/** As the other latency rows: each job arrives at an idle agent whose pool has refilled. */

export interface PythonBench {
  image: { tag: string; sizeMb: number };
  latencyMs: {
    dockerRunPython: Distribution;
    labrunColdPython: Distribution;
    labrunWarmNode: Distribution;
    labrunWarmPython: Distribution;
  };
}

/** Submit → result through the typed HTTP client, checking the job returned 1. */
function httpJobs(cluster: ClusterProcesses, count: number, job: SubmitJobRequest) {
  const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
  return sample(count, async () => {
    const { id } = await client.submit(job);
    const done = await client.wait(id, { timeoutMs: 60_000 });
    if (!done.outcome?.ok || done.outcome.result !== 1) {
      throw new Error(`job ${id} did not return 1: ${JSON.stringify(done.outcome)}`);
    }
  });
}

/**
 * The Python rows, side by side with a warm Node job in the same cluster:
 * `docker run --rm -i` of the python runner image with the agent's sandbox
 * flags, labrun cold (pool off) and warm, each with the trivial program.
 */
export async function benchPython(
  docker: Dockerode,
  samples: number,
  step: (text: string) => void,
): Promise<PythonBench> {
  const tag = await ensurePythonImage(docker, pino({ level: "silent" }));
  const sizeMb = Math.round(((await docker.getImage(tag).inspect()).Size / 1e6) * 10) / 10;
  const flags = dockerRunFlags(
    containerOptions({
      image: tag,
      jobId: "bench",
      agentName: "bench",
      limits: DEFAULT_LIMITS,
      sandbox: DEFAULT_SANDBOX,
    }),
  );

  step(`python: docker run of ${tag} × ${samples}`);
  const dockerRunPython = await sample(samples, async () => {
    const nonce = `bench${Math.random().toString(36).slice(2).padEnd(16, "0")}`;
    const stdin = JSON.stringify({
      source: TRIVIAL_PYTHON,
      filename: "main.py",
      input: null,
      nonce,
    });
    const out = await runCommand("docker", [...flags, tag], `${stdin}\n`);
    if (!out.includes(`${nonce}{"ok":true,"result":1}${nonce}`)) {
      throw new Error(`docker run gave an unexpected answer: ${out.slice(0, 200)}`);
    }
  });

  step(`python: labrun cold (warm pool off) × ${samples}`);
  const cold = await launchCluster({ slots: 1, warm: 0 });
  let labrunColdPython: Distribution;
  try {
    labrunColdPython = await httpJobs(cold, samples, {
      source: TRIVIAL_PYTHON,
      filename: "main.py",
    });
  } finally {
    await cold.stop();
  }

  step(`python: labrun warm, node then python × ${samples} each`);
  const warm = await launchCluster({ slots: 2, warm: 2 });
  let labrunWarmNode: Distribution;
  let labrunWarmPython: Distribution;
  try {
    await sleep(3_000); // the pool fills
    labrunWarmNode = await httpJobs(warm, samples, { source: TRIVIAL_NODE });
    labrunWarmPython = await httpJobs(warm, samples, {
      source: TRIVIAL_PYTHON,
      filename: "main.py",
    });
  } finally {
    await warm.stop();
  }
  return {
    image: { tag, sizeMb },
    latencyMs: { dockerRunPython, labrunColdPython, labrunWarmNode, labrunWarmPython },
  };
}

const ms = (value: number) => String(Math.round(value * 100) / 100);

/** The Python section of latest.md. */
export function renderPython(bench: PythonBench): string {
  const { dockerRunPython, labrunColdPython, labrunWarmNode, labrunWarmPython } = bench.latencyMs;
  const row = (name: string, d: Distribution) =>
    `| ${name} | ${ms(d.p50)} | ${ms(d.p95)} | ${ms(d.p50 / dockerRunPython.p50)} |`;
  const warmGap = labrunWarmPython.p50 - labrunWarmNode.p50;
  const coldRatio = labrunColdPython.p50 / dockerRunPython.p50;
  return [
    "",
    `Python runner image \`${bench.image.tag}\`: ${bench.image.sizeMb} MB.`,
    "",
    "| Trivial Python job (`def main(): return 1`) | p50 ms | p95 ms | ÷ `docker run` (python image) |",
    "| --- | ---: | ---: | ---: |",
    row("`docker run --rm -i` (python image, same sandbox flags)", dockerRunPython),
    row("labrun cold (pool off), python, HTTP client", labrunColdPython),
    row("labrun warm, node, HTTP client (same run)", labrunWarmNode),
    row("labrun warm, python, HTTP client", labrunWarmPython),
    "",
    "| Python target | wanted | measured | met |",
    "| --- | --- | --- | --- |",
    `| warm python p50 − warm node p50 | ≤ 10 ms | ${ms(warmGap)} ms | ${warmGap <= 10 ? "yes" : "**no**"} |`,
    `| cold python p50 ÷ \`docker run\` (python image) p50 | ≤ 1.1 | ${ms(coldRatio)} | ${coldRatio <= 1.1 ? "yes" : "**no**"} |`,
    `| python runner image | ≤ 60 MB | ${bench.image.sizeMb} MB | ${bench.image.sizeMb <= 60 ? "yes" : "**no**"} |`,
    "",
  ].join("\n");
}
