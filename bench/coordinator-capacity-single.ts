/**
 * The coordinator's share of a warm single job, without Docker: one
 * simulated agent waits in a lease long-poll, and one job at a time is
 * submitted, leased, its result posted, and read by a client's long-poll,
 * each over real HTTP on loopback to the coordinator in its own process. It
 * isolates what bench/e2e/breakdown.ts calls the submit, lease wake-up,
 * result post and client wake-up hops from Docker and the agent's own work.
 *
 * Jobs are spaced by a pause (as breakdown.ts does), so every request finds
 * an idle coordinator: the figures are latency, not throughput.
 */
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { LabrunClient } from "../client/api.js";
import type {
  LeaseResponse,
  RegisterAgentRequest,
  RegisterAgentResponse,
  SubmitJobResponse,
} from "../protocol/index.js";
import { processCpuSeconds } from "./coordinator/cpu.js";
import { LoopbackJson, sleep } from "./coordinator/http.js";
import { launchCoordinator } from "./coordinator/launch.js";
import { type Distribution, distribution, round } from "./stats.js";

export interface SingleJobOptions {
  /** Another build's dist/ whose coordinator runs (bench/compare-builds.ts). */
  dist?: string;
  /** Jobs measured (default 100), after `warmup` jobs left out (default 20). */
  jobs?: number;
  warmup?: number;
  /** Pause between jobs (default 30 ms). */
  pauseMs?: number;
  /** Writes the coordinator's CPU profile of the measured jobs here (a `.cpuprofile`). */
  cpuProfile?: string;
}

/** p50 and the rest of each hop over the jobs measured (ms). */
export interface SingleJobResult {
  jobs: number;
  /** POST /v1/jobs sent → its 201 read. */
  submitMs: Distribution;
  /** POST /v1/jobs sent → the waiting lease's answer read (the lease's wake-up and its transaction). */
  submitToLeaseMs: Distribution;
  /** Result POST sent → its 200 read (the commit and the answer). */
  resultMs: Distribution;
  /** Result POST sent → the client's waiting GET /v1/jobs/:id?wait answered. */
  resultToClientMs: Distribution;
  /**
   * The coordinator process's CPU (user + system, /proc) per measured job:
   * its four requests (lease, submit, long-poll read, result) and their
   * commits. The request mix is fixed, so on a machine others share this
   * moves far less than the latencies do.
   */
  cpuMsPerJob: number;
  /**
   * The same submit, alternately by labrun's own client (LabrunClient, as
   * `labrun submit` and bench/e2e/breakdown.ts send it) and by the bench's
   * bare node:http client, with no agent leasing: what of the submit hop is
   * the client's and not the coordinator's.
   */
  submitByClientMs: { labrunClient: Distribution; bareHttp: Distribution };
  /** The submit's round trip plus result sent → client answered: the coordinator's share without the agent's. */
  totalMs: Distribution;
}

const SUBMIT_BODY = JSON.stringify({ source: "exports.main = () => 1" });
const OUTCOME_JSON = JSON.stringify({
  ok: true,
  result: 1,
  logs: "",
  stats: { durationMs: 0 },
});

/** GET `/v1<path>` on keep-alive; resolves with the status once the body is read. */
function get(agent: Agent, base: URL, path: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: base.hostname,
        port: Number(base.port),
        method: "GET",
        path: `/v1${path}`,
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        res.resume();
        res.on("error", reject);
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const check = (what: string, status: number, expected: number) => {
  if (status !== expected) throw new Error(`${what} answered ${status}, not ${expected}`);
};

/**
 * Runs the jobs one at a time against a fresh coordinator child and stops it.
 *
 * @example
 * const { submitMs, resultMs } = await singleJobShare({ jobs: 60 });
 */
export async function singleJobShare(options: SingleJobOptions = {}): Promise<SingleJobResult> {
  const coordinator = await launchCoordinator(options.dist ? { dist: options.dist } : {});
  const base = new URL(coordinator.started.url);
  const http = new LoopbackJson(coordinator.started.url);
  const reader = new Agent({ keepAlive: true });
  const { tokens } = coordinator.started;
  const jobs = options.jobs ?? 100;
  const warmup = options.warmup ?? 20;
  const hops = {
    submit: [],
    submitToLease: [],
    result: [],
    resultToClient: [],
    total: [],
    labrunClient: [],
    bareHttp: [],
  } as {
    [hop in
      | "submit"
      | "submitToLease"
      | "result"
      | "resultToClient"
      | "total"
      | "labrunClient"
      | "bareHttp"]: number[];
  };
  let cpuAtStart = 0;
  let cpuSeconds = 0;
  try {
    const register: RegisterAgentRequest = {
      name: "single",
      hostname: "bench",
      slots: 1,
      version: "bench",
      labels: {},
    };
    const registered = await http.post("/agents/register", tokens.agent, JSON.stringify(register));
    check("register", registered.status, 200);
    const { agentId, token } = registered.body as RegisterAgentResponse;
    for (let i = 0; i < warmup + jobs; i++) {
      const lease = http
        .post(`/agents/${agentId}/lease`, token, `{"free":1,"waitMs":10000}`)
        .then((answer) => ({ answer, at: performance.now() }));
      await sleep(options.pauseMs ?? 30); // the lease is waiting, as a warm agent's is
      const sent = performance.now();
      const submitted = await http.post("/jobs", tokens.client, SUBMIT_BODY);
      const answered = performance.now();
      check("submit", submitted.status, 201);
      const { id } = submitted.body as SubmitJobResponse;
      const read = get(reader, base, `/jobs/${id}?wait=10`, tokens.client).then((status) => ({
        status,
        at: performance.now(),
      }));
      const leased = await lease;
      check("lease", leased.answer.status, 200);
      const [job] = (leased.answer.body as LeaseResponse).jobs;
      if (job?.id !== id) throw new Error(`the lease answered ${job?.id}, not ${id}`);
      // The reader's GET must be waiting before the result goes out.
      await sleep(5);
      const resultSent = performance.now();
      const result = await http.post(
        `/agents/${agentId}/results`,
        token,
        `{"leaseId":"${job.leaseId}","outcome":${OUTCOME_JSON}}`,
      );
      const resultAnswered = performance.now();
      check("result", result.status, 200);
      const done = await read;
      check("long-poll read", done.status, 200);
      if (i === warmup - 1) {
        if (options.cpuProfile) await coordinator.command({ profile: "start" });
        cpuAtStart = processCpuSeconds(coordinator.started.pid);
      }
      if (i < warmup) continue;
      hops.submit.push(answered - sent);
      hops.submitToLease.push(leased.at - sent);
      hops.result.push(resultAnswered - resultSent);
      hops.resultToClient.push(done.at - resultSent);
      hops.total.push(answered - sent + (done.at - resultSent));
    }
    cpuSeconds = processCpuSeconds(coordinator.started.pid) - cpuAtStart;
    const client = new LabrunClient({ server: coordinator.started.url, token: tokens.client });
    for (let i = 0; i < warmup + jobs; i++) {
      const byClient = performance.now();
      await client.submit({ source: "exports.main = () => 1" });
      const bare = performance.now();
      check("bare submit", (await http.post("/jobs", tokens.client, SUBMIT_BODY)).status, 201);
      if (i >= warmup) {
        hops.labrunClient.push(bare - byClient);
        hops.bareHttp.push(performance.now() - bare);
      }
      await sleep(options.pauseMs ?? 30);
    }
    if (options.cpuProfile) {
      await coordinator.command({ profile: "stop", path: options.cpuProfile });
    }
  } finally {
    reader.destroy();
    http.close();
    await coordinator.stop();
  }
  return {
    jobs,
    cpuMsPerJob: round((cpuSeconds * 1000) / jobs, 3),
    submitMs: distribution(hops.submit),
    submitToLeaseMs: distribution(hops.submitToLease),
    resultMs: distribution(hops.result),
    resultToClientMs: distribution(hops.resultToClient),
    totalMs: distribution(hops.total),
    submitByClientMs: {
      labrunClient: distribution(hops.labrunClient),
      bareHttp: distribution(hops.bareHttp),
    },
  };
}
