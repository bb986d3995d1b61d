import { performance } from "node:perf_hooks";
import { LabrunClient } from "../../client/api.js";
import { round } from "../stats.js";
import { runCommand, trivialRequest } from "./baselines.js";
import { TRIVIAL_SOURCE } from "./latency.js";
import type { ClusterProcesses } from "./processes.js";

export interface Throughput {
  jobs: number;
  parallelism: number;
  seconds: number;
  jobsPerSecond: number;
}

/** Every job submitted at once to a one-agent cluster; done when the last result is in. */
export async function labrunBurst(cluster: ClusterProcesses, jobs: number, parallelism: number) {
  const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
  const started = performance.now();
  const ids = await Promise.all(
    Array.from({ length: jobs }, async () => (await client.submit({ source: TRIVIAL_SOURCE })).id),
  );
  const finished = await Promise.all(ids.map((id) => client.wait(id, { timeoutMs: 600_000 })));
  const seconds = (performance.now() - started) / 1000;
  const failed = finished.filter((job) => !job.outcome?.ok || job.outcome.result !== 1);
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} burst jobs failed, e.g. ${JSON.stringify(failed[0]?.outcome)}`,
    );
  }
  return summary(jobs, parallelism, seconds);
}

/** The same number of `docker run --rm` with the same parallelism: raw container churn. */
export async function dockerChurn(
  flags: string[],
  image: string,
  jobs: number,
  parallelism: number,
): Promise<Throughput> {
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < jobs) {
      next += 1;
      const { stdin } = trivialRequest(TRIVIAL_SOURCE);
      await runCommand("docker", [...flags, image], stdin);
    }
  };
  await Promise.all(Array.from({ length: parallelism }, worker));
  return summary(jobs, parallelism, (performance.now() - started) / 1000);
}

function summary(jobs: number, parallelism: number, seconds: number): Throughput {
  return { jobs, parallelism, seconds: round(seconds), jobsPerSecond: round(jobs / seconds) };
}
