import { readFileSync } from "node:fs";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import { LabrunClient } from "../../client/api.js";
import type { SubmitJobRequest } from "../../protocol/index.js";
import { round } from "../stats.js";
import { TRIVIAL_SOURCE } from "./latency.js";
import type { ClusterProcesses } from "./processes.js";
import type { TraceEvent } from "./trace-hooks.js";

/** Where one warm job's time goes, p50 of each hop over the sample (ms). */
export interface WarmJobBreakdown {
  jobs: number;
  totalMs: number;
  hopsMs: Record<HopName, number>;
  /** The same attach stream with an echo in place of the runner: Docker's part of `container`. */
  attachEchoMs: number;
}

const HOPS = {
  submit: "client: POST /v1/jobs, answered (HTTP + one SQLite commit)",
  leaseWake: "coordinator: submit answered → the waiting lease answered",
  leaseToAgent: "lease answer → the agent has read it",
  agentToRunner: "agent: lease read → job written to the warm container's stdin",
  container: "stdin → the runner's last output byte back (Docker attach in, runner, attach out)",
  agentToResult: "agent: output complete → result POST sent",
  resultPost: "result POST sent → the coordinator has committed it and answered",
  clientWake: "result answered → the client's long-poll answered",
  toClient: "long-poll answer → the client has read it",
} as const;
type HopName = keyof typeof HOPS;
export const HOP_DESCRIPTIONS: Record<HopName, string> = HOPS;

const PAUSE_MS = 600;
const CLOCK_SLACK_MS = 50;

/** The breakdown's job unless told otherwise: the trivial one of the latency rows. */
const TRIVIAL_JOB: SubmitJobRequest = { source: TRIVIAL_SOURCE };

/**
 * Runs `count` jobs (`job`, trivial by default) one at a time on a traced
 * cluster (launchCluster with `trace`), then cuts each job's time into hops
 * by the events the coordinator and agent recorded. The client's own times
 * are taken here.
 */
export async function warmJobBreakdown(
  cluster: ClusterProcesses,
  count: number,
  job: SubmitJobRequest = TRIVIAL_JOB,
): Promise<Array<{ startedAt: number; submittedAt: number; doneAt: number; id: string }>> {
  const client = new LabrunClient({ server: cluster.url, token: cluster.tokens.client });
  const now = () => performance.timeOrigin + performance.now();
  const jobs: Array<{ startedAt: number; submittedAt: number; doneAt: number; id: string }> = [];
  await client.wait((await client.submit(job)).id, { timeoutMs: 60_000 }); // warm-up
  for (let i = 0; i < count; i++) {
    await sleep(PAUSE_MS);
    const startedAt = now();
    const { id } = await client.submit(job);
    const submittedAt = now();
    await client.wait(id, { timeoutMs: 60_000 });
    jobs.push({ startedAt, submittedAt, doneAt: now(), id });
  }
  return jobs;
}

/** Reads the traces the cluster's processes wrote on exit and cuts the jobs into hops. */
export function analyseBreakdown(
  jobs: Awaited<ReturnType<typeof warmJobBreakdown>>,
  traceFiles: { coordinator: string; agent: string },
  attachEchoMs: number,
): WarmJobBreakdown {
  const coordinator = JSON.parse(readFileSync(traceFiles.coordinator, "utf8")) as TraceEvent[];
  const agent = JSON.parse(readFileSync(traceFiles.agent, "utf8")) as TraceEvent[];
  const hops = Object.fromEntries(
    Object.keys(HOPS).map((name) => [name, [] as number[]]),
  ) as Record<HopName, number[]>;
  const totals: number[] = [];
  /** Jobs left out, by the first event of theirs that was not found. */
  const skipped = new Map<string, number>();
  for (const job of jobs) {
    // Events up to a little past the client's own end: the coordinator may
    // finish answering the result POST after the client has read the job.
    const within = (events: TraceEvent[], kind: TraceEvent[1], what: RegExp, after: number) =>
      events.find(
        ([at, k, w]) =>
          k === kind && what.test(w) && at >= after && at <= job.doneAt + CLOCK_SLACK_MS,
      )?.[0];
    const start = job.startedAt - CLOCK_SLACK_MS;
    const arrived = within(coordinator, "server.request", /^POST \/v1\/jobs$/, start);
    const submitted = within(coordinator, "server.finish", /^POST \/v1\/jobs$/, start);
    // The lease may be answered a hair before the submit's own answer is out.
    const leased = within(coordinator, "server.finish", /\/lease$/, arrived ?? Infinity);
    // Sought from the submit's arrival, not the lease's answer: on a loaded
    // machine the agent may read the answer before the coordinator's own
    // `end` call has returned and been recorded.
    const leaseRead = within(agent, "client.response", /\/lease$/, arrived ?? Infinity);
    const stdin = within(agent, "attach.stdin", /./, leaseRead ?? Infinity);
    const resultSent = within(agent, "client.send", /\/results$/, stdin ?? Infinity);
    const lastOutput = agent
      .filter(
        ([at, kind]) =>
          kind === "attach.data" && at >= (stdin ?? Infinity) && at <= (resultSent ?? 0),
      )
      .at(-1)?.[0];
    const resultArrived = within(
      coordinator,
      "server.request",
      /\/results$/,
      resultSent ?? Infinity,
    );
    const resultDone = within(coordinator, "server.finish", /\/results$/, resultSent ?? Infinity);
    // The coordinator wakes the job's long-poll as it commits the result, so
    // the long-poll's answer may go out a hair before the result POST's own.
    const waitDone = within(
      coordinator,
      "server.finish",
      new RegExp(`^GET /v1/jobs/${job.id}\\?wait=`),
      resultArrived ?? Infinity,
    );
    const found = {
      submitted,
      leased,
      leaseRead,
      stdin,
      lastOutput,
      resultSent,
      resultDone,
      waitDone,
    };
    const missing = Object.entries(found).find(([, at]) => at === undefined)?.[0];
    if (missing !== undefined) {
      // A heartbeat or a retry got in the way of this one.
      skipped.set(missing, (skipped.get(missing) ?? 0) + 1);
      continue;
    }
    // Every event was found (the check above).
    const {
      submitted: s,
      leased: l,
      leaseRead: lr,
      stdin: si,
      lastOutput: lo,
      resultSent: rs,
      resultDone: rd,
      waitDone: wd,
    } = found as { [K in keyof typeof found]: number };
    hops.submit.push(job.submittedAt - job.startedAt);
    hops.leaseWake.push(Math.max(0, l - s));
    hops.leaseToAgent.push(Math.max(0, lr - l));
    hops.agentToRunner.push(si - lr);
    hops.container.push(lo - si);
    hops.agentToResult.push(rs - lo);
    hops.resultPost.push(rd - rs);
    hops.clientWake.push(Math.max(0, wd - rd));
    hops.toClient.push(Math.max(0, job.doneAt - wd));
    totals.push(job.doneAt - job.startedAt);
  }
  // Half the sample at least, or the trace hooks no longer see what they
  // look for: a row of NaN (or of two jobs) would be printed as if measured.
  if (totals.length < Math.max(1, Math.ceil(jobs.length / 2))) {
    throw new Error(
      `the breakdown traced ${totals.length} of ${jobs.length} jobs; missing events: ${JSON.stringify(Object.fromEntries(skipped))} (bench/e2e/trace-hooks.ts no longer matches what the processes do?)`,
    );
  }
  return {
    jobs: totals.length,
    totalMs: median(totals),
    hopsMs: Object.fromEntries(
      Object.entries(hops).map(([name, values]) => [name, median(values)]),
    ) as Record<HopName, number>,
    attachEchoMs,
  };
}

/**
 * Docker's own share of the container hop: one line written to a container's
 * attach stream (same image, same sandbox) and answered by a node that only
 * echoes it, p50 over `count` lines. With `bytes`, each line is that long
 * (a bundle's size) and the node answers it with a short line of its own:
 * the attach in of that many bytes, and out of a result's few.
 */
export async function attachEcho(
  docker: Dockerode,
  options: Dockerode.ContainerCreateOptions,
  count: number,
  bytes = 0,
): Promise<number> {
  const container = await docker.createContainer({
    ...options,
    Labels: { ...options.Labels, "labrun.bench": "attach-echo" },
    Entrypoint: [
      "/usr/local/bin/node",
      "-e",
      bytes === 0
        ? "process.stdin.on('data', (d) => process.stdout.write(d))"
        : "process.stdin.on('data', (d) => { for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) process.stdout.write('ok\\n'); })",
    ],
    Cmd: [],
    StdinOnce: false,
  });
  try {
    const stream = (await container.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as Duplex;
    await container.start();
    await sleep(2_000); // node has booted
    const times: number[] = [];
    for (let i = 0; i < count + 1; i++) {
      const started = performance.now();
      const echoed = new Promise((resolve) => stream.once("data", resolve));
      stream.write(bytes === 0 ? `${JSON.stringify({ line: i })}\n` : `${"x".repeat(bytes)}\n`);
      await echoed;
      if (i > 0) times.push(performance.now() - started);
      await sleep(50);
    }
    stream.destroy();
    return median(times);
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.floor(sorted.length / 2)] ?? Number.NaN);
}

/**
 * The whole breakdown: a traced cluster (launched by `launch`), `count`
 * jobs (`job`, trivial by default), the attach echo beside it (of lines as
 * long as `echoBytes`, when given).
 */
export async function measureWarmBreakdown(
  docker: Dockerode,
  echoOptions: Dockerode.ContainerCreateOptions,
  count: number,
  launch: (traceDir: string) => Promise<ClusterProcesses>,
  traceDir: string,
  job: SubmitJobRequest = TRIVIAL_JOB,
  echoBytes = 0,
): Promise<WarmJobBreakdown> {
  const cluster = await launch(traceDir);
  let jobs: Awaited<ReturnType<typeof warmJobBreakdown>>;
  try {
    await sleep(2_000); // the pool fills
    jobs = await warmJobBreakdown(cluster, count, job);
  } finally {
    await cluster.stop(); // the processes write their traces as they exit
  }
  const echo = await attachEcho(docker, echoOptions, count, echoBytes);
  if (!cluster.traceFiles) throw new Error("the breakdown needs a traced cluster");
  return analyseBreakdown(jobs, cluster.traceFiles, echo);
}
