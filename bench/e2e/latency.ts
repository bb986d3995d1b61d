import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { LabrunClient } from "../../client/api.js";
import { type Distribution, distribution } from "../stats.js";
import { runCommand, trivialRequest } from "./baselines.js";
import { BIN, type ClusterProcesses } from "./processes.js";

export const TRIVIAL_SOURCE = "exports.main = () => 1";

/**
 * A job arrives at an idle machine every PAUSE_MS: long enough for the warm
 * pool to boot the replacement of the container the last job used (each
 * container runs one job), so a latency row measures one job on an idle
 * agent. Sustained rates are the throughput rows' business. Every row gets
 * the same pause.
 */
const PAUSE_MS = 600;

/** Times `count` runs of `once`, one at a time (latency, not throughput). */
export async function sample(count: number, once: () => Promise<void>): Promise<Distribution> {
  await once(); // warm-up: first-run costs (page cache, JIT) are not what is compared
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    await sleep(PAUSE_MS);
    const started = performance.now();
    await once();
    times.push(performance.now() - started);
  }
  return distribution(times);
}

/** `node -e 1`: the cost of starting node at all. */
export function bareNode(count: number): Promise<Distribution> {
  return sample(count, async () => {
    await runCommand(process.execPath, ["-e", "1"]);
  });
}

/** `docker run --rm -i` of the runner image with the agent's sandbox flags, the job on stdin. */
export function dockerRun(count: number, flags: string[], image: string): Promise<Distribution> {
  return sample(count, async () => {
    const { stdin, nonce } = trivialRequest(TRIVIAL_SOURCE);
    const out = await runCommand("docker", [...flags, image], stdin);
    if (!out.includes(`${nonce}{"ok":true,"result":1}${nonce}`)) {
      throw new Error(`docker run gave an unexpected answer: ${out.slice(0, 200)}`);
    }
  });
}

/** Typed HTTP client: submit, then long-poll the job until it is terminal. */
export function labrunHttp(cluster: ClusterProcesses, count: number): Promise<Distribution> {
  const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
  return sample(count, () => httpJob(client));
}

/** What a user feels, measured round by round side by side (one of each per round). */
export interface InterleavedLatency {
  nodeE: Distribution;
  labrunWarmHttp: Distribution;
  labrunWarmCli: Distribution;
  cliVersion: Distribution;
  cliStatus: Distribution;
  cliJobs: Distribution;
  /** With another build's bin (`compareBin`): its submit, status and jobs, in the same rounds. */
  compareCliSubmit?: Distribution;
  compareCliStatus?: Distribution;
  compareCliJobs?: Distribution;
}

/**
 * `node -e 1`, a warm job over HTTP, `labrun submit`, `labrun --version`,
 * `labrun status ID` and `labrun jobs`, interleaved: each round runs one of
 * each, so a noisy neighbour (other test runs on this machine) weighs on all
 * of them alike and the ratios compare like with like. Each row starts
 * PAUSE_MS after the one before, as in every latency row. With `compareBin`
 * (another build's bin/labrun.js), that build's submit, status and jobs run
 * in the same rounds, with a code cache folder of their own (each build
 * removes the other's cache files).
 */
export async function interleavedLatency(
  cluster: ClusterProcesses,
  count: number,
  workDir: string,
  compareBin?: string,
): Promise<InterleavedLatency> {
  const program = join(workDir, "trivial.js");
  writeFileSync(program, `${TRIVIAL_SOURCE}\n`);
  const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
  const { id: someJob } = await client.submit({ source: TRIVIAL_SOURCE });
  await client.wait(someJob);
  const compareEnv = { XDG_CACHE_HOME: join(workDir, "compare-cache") };
  const cli =
    (args: string[], expect?: string, bin = BIN, env: NodeJS.ProcessEnv = {}) =>
    async () => {
      const out = await runCli(cluster, args, bin, env);
      if (expect !== undefined && out.trim() !== expect) {
        throw new Error(`labrun ${args.join(" ")} printed ${out.trim().slice(0, 200)}`);
      }
    };
  const rows: Record<string, () => Promise<void>> = {
    nodeE: () => runCommand(process.execPath, ["-e", "1"]).then(() => {}),
    labrunWarmHttp: () => httpJob(client),
    labrunWarmCli: cli(["submit", program], "1"),
    cliVersion: cli(["--version"]),
    cliStatus: cli(["status", someJob]),
    cliJobs: cli(["jobs"]),
    ...(compareBin
      ? {
          compareCliSubmit: cli(["submit", program], "1", compareBin, compareEnv),
          compareCliStatus: cli(["status", someJob], undefined, compareBin, compareEnv),
          compareCliJobs: cli(["jobs"], undefined, compareBin, compareEnv),
        }
      : {}),
  };
  const times = Object.fromEntries(Object.keys(rows).map((name) => [name, [] as number[]]));
  for (let round = 0; round <= count; round++) {
    for (const [name, once] of Object.entries(rows)) {
      // Every row waits as long: the agent's background work after a job
      // (its container's replacement booting) must not land on one row only.
      await sleep(PAUSE_MS);
      const started = performance.now();
      await once();
      // Round 0 warms up (page cache, JIT, compile cache) and is not counted.
      if (round > 0) times[name]?.push(performance.now() - started);
    }
  }
  return Object.fromEntries(
    Object.entries(times).map(([name, sample]) => [name, distribution(sample)]),
  ) as unknown as InterleavedLatency;
}

/** One trivial job over HTTP: submit, then long-poll it to its result (1). */
export async function httpJob(client: LabrunClient): Promise<void> {
  const { id } = await client.submit({ source: TRIVIAL_SOURCE });
  const job = await client.wait(id, { timeoutMs: 60_000 });
  if (!job.outcome?.ok || job.outcome.result !== 1) {
    throw new Error(`job ${id} did not return 1: ${JSON.stringify(job.outcome)}`);
  }
}

/** One `labrun …` process as a user runs it (the package's bin, or `bin`); its stdout. */
export function runCli(
  cluster: ClusterProcesses,
  args: string[],
  bin = BIN,
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...cluster.cliEnv, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      text += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`labrun ${args[0]} exited ${code}`)),
    );
  });
}

/**
 * A warm job over HTTP on each of several clusters, interleaved (one on
 * each per round, PAUSE_MS before each), so the machine's noise weighs on
 * all alike: PostgreSQL against SQLite, or this build against another.
 */
export async function interleavedHttp<Name extends string>(
  clusters: Record<Name, ClusterProcesses>,
  count: number,
): Promise<Record<Name, Distribution>> {
  const entries = (Object.entries(clusters) as [Name, ClusterProcesses][]).map(
    ([name, cluster]) =>
      [name, new LabrunClient({ server: cluster.url, token: cluster.tokens.client })] as const,
  );
  const times = new Map<Name, number[]>(entries.map(([name]) => [name, []]));
  for (let round = 0; round <= count; round++) {
    for (const [name, client] of entries) {
      await sleep(PAUSE_MS);
      const started = performance.now();
      await httpJob(client);
      // Round 0 warms up and is not counted.
      if (round > 0) times.get(name)?.push(performance.now() - started);
    }
  }
  return Object.fromEntries(
    [...times].map(([name, sample]) => [name, distribution(sample)]),
  ) as Record<Name, Distribution>;
}
