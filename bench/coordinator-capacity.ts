/**
 * Coordinator capacity, without Docker: the coordinator runs alone in a child
 * process; simulated agents (the real lease loop, but a job "runs" by posting
 * its outcome at once) and a submitter talk to it over real HTTP on loopback.
 * What is measured is the coordinator's own bookkeeping per job:
 * submit → lease → result, each an HTTP request through auth, zod and SQLite.
 *
 * Phases (each bounded in time):
 * 1. throughput with ~1,000 jobs queued (the queue kept fed);
 * 2. queue and end-to-end latency at a steady 50% of that throughput;
 * 3. enqueue 100,000 jobs (agents paused), RSS with them queued;
 * 4. throughput with ~100,000 jobs queued.
 */
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type CpuWindow, startCpuWindow } from "./coordinator/cpu.js";
import { LoopbackJson, sleep } from "./coordinator/http.js";
import {
  type ChildServer,
  type CoordinatorStarted,
  launchCoordinator,
  launchNullServer,
  type ProcessMemory,
} from "./coordinator/launch.js";
import { AgentFleet, type FleetCounters } from "./coordinator/sim-agent.js";
import { enqueueMany, keepQueueFed, submitAtRate } from "./coordinator/submitter.js";
import { type Distribution, distribution, round } from "./stats.js";

export interface CoordinatorCapacityOptions {
  /** Simulated agents (default 50). */
  agents?: number;
  /** Slots per agent (default 4). */
  slots?: number;
  /** Measured window of the throughput and latency phases (default 10 s). */
  durationMs?: number;
  /** Jobs queued before the large-queue phase (default 100,000). */
  bigQueue?: number;
  /**
   * Profiles the coordinator with V8's CPU profiler (the one behind
   * `node --cpu-prof`), one `<phase>.cpuprofile` per phase in this directory.
   */
  cpuProfileDir?: string;
}

/** One throughput window: jobs completed through submit → lease → result. */
export interface ThroughputResult {
  /** Jobs queued when the window opened (the submitter keeps about this many). */
  queuedAtStart: number;
  windowSeconds: number;
  /** Results accepted per second: the headline number. */
  jobsPerSecond: number;
  submitsPerSecond: number;
  leaseCallsPerSecond: number;
  /** Jobs per lease answer (an agent asks for all its free slots at once). */
  jobsPerLease: number;
  /** Every request the coordinator answered (submit, lease, result, heartbeat) per second. */
  coordinatorRequestsPerSecond: number;
  requestsPerJob: number;
  /** CPU in cores (1.0 = one core busy): coordinator, this client, everything else. */
  cpu: CpuWindow;
  /** Non-2xx answers or failed requests during the window. */
  errors: number;
}

/** A bare node:http server under the same client: what any Node HTTP service can answer here. */
export interface HttpCeilingResult {
  concurrency: number;
  requestsPerSecond: number;
  cpu: CpuWindow;
}

export interface LatencyResult {
  /** 50% of the throughput measured with 1,000 queued. */
  targetPerSecond: number;
  achievedPerSecond: number;
  /** Jobs measured (the first second is warm-up and left out). */
  jobs: number;
  /** Submit accepted (201 received) → lease received by an agent; 0 when the lease came first. */
  queueMs: Distribution;
  /** Submit request sent → lease received: an upper bound of queue time, with the submit's own trip. */
  queueFromSendMs: Distribution;
  /** Submit request sent → 201 received. */
  submitMs: Distribution;
  /** Submit request sent → result accepted (200 to the agent's result post). */
  submitToResultMs: Distribution;
  /** How late the bench sent its last jobs against the schedule (a client-side limit if large). */
  submitterMaxBehindMs: number;
  cpu: CpuWindow;
  errors: number;
  /** Accepted jobs whose lease or result was not seen in time. */
  unfinished: number;
}

export interface EnqueueResult {
  requested: number;
  accepted: number;
  seconds: number;
  perSecond: number;
  concurrency: number;
  complete: boolean;
  errors: number;
}

/**
 * RSS from /proc (read first, as the process had it), then what V8 holds
 * after a forced full GC: the live heap; the rest of RSS is free heap V8 keeps,
 * SQLite's cache, malloc and code.
 */
export interface CoordinatorMemory extends ProcessMemory {
  heapUsedAfterGcMb: number;
  heapTotalMb: number;
  externalMb: number;
}

export interface Target {
  target: number;
  measured: number;
  met: boolean;
}

export interface CoordinatorCapacityResult {
  setup: {
    agents: number;
    slots: number;
    durationMs: number;
    cpus: number;
    node: string;
    coordinatorPid: number;
    /** The machine's 1-minute load average when the bench began (others' load skews it). */
    loadAverage1m: number;
  };
  httpCeiling: HttpCeilingResult;
  throughputQueued1k: ThroughputResult;
  latencyAtHalfLoad: LatencyResult;
  enqueueBigQueue: EnqueueResult;
  throughputQueuedBig: ThroughputResult;
  memory: {
    idle: CoordinatorMemory;
    /** With the big queue filled and no agent leasing. */
    bigQueueQueued: CoordinatorMemory & { queued: number };
    /** After the last phase (peakRssMb is the whole run's peak). */
    end: CoordinatorMemory;
  };
  targets: {
    /** ≥ 5,000 jobs/s with 1,000 queued. */
    jobsPerSecond: Target;
    /** p99 queue latency ≤ 10 ms at half that load. */
    p99QueueMs: Target;
    /** Coordinator RSS ≤ 200 MB with 100k queued. */
    rssMbBigQueue: Target;
  };
  /** The coordinator's CPU profile of each phase, when asked for. */
  cpuProfiles?: Record<string, string>;
  elapsedSeconds: number;
}

const FEED_CONCURRENCY = 32;
const CEILING_CONCURRENCY = 64;
const ENQUEUE_CONCURRENCY = 64;
const WARMUP_MS = 1_000;
/** Bounds of the phases that wait on the coordinator rather than a clock. */
const DRAIN_TIMEOUT_MS = 15_000;
const ENQUEUE_TIMEOUT_MS = 60_000;
const SMALL_QUEUE = 1_000;

/**
 * Runs all phases against a fresh coordinator child and stops it.
 *
 * @example
 * const result = await benchCoordinatorCapacity({ agents: 50, slots: 4, durationMs: 10_000 });
 * result.throughputQueued1k.jobsPerSecond;
 */
export async function benchCoordinatorCapacity(
  options: CoordinatorCapacityOptions = {},
): Promise<CoordinatorCapacityResult> {
  const agents = options.agents ?? 50;
  const slots = options.slots ?? 4;
  const durationMs = options.durationMs ?? 10_000;
  const bigQueue = options.bigQueue ?? 100_000;
  const began = performance.now();
  const loadAverage1m = loadavg()[0] ?? 0;

  const httpCeiling = await measureHttpCeiling(Math.min(3_000, durationMs));
  const coordinator = await launchCoordinator();
  const pid = coordinator.started.pid;
  const http = new LoopbackJson(coordinator.started.url);
  const profiles: Record<string, string> = {};
  const memory = async (): Promise<CoordinatorMemory> => {
    const rss = coordinator.memory();
    const { memory: usage } = (await coordinator.command({ memory: true })) as {
      memory: NodeJS.MemoryUsage;
    };
    const mb = (bytes: number) => round(bytes / 2 ** 20, 1);
    return {
      ...rss,
      heapUsedAfterGcMb: mb(usage.heapUsed),
      heapTotalMb: mb(usage.heapTotal),
      externalMb: mb(usage.external),
    };
  };
  const profiled = async <T>(phase: string, run: () => Promise<T>): Promise<T> => {
    if (!options.cpuProfileDir) return run();
    await coordinator.command({ profile: "start" });
    try {
      return await run();
    } finally {
      const path = join(options.cpuProfileDir, `${phase}.cpuprofile`);
      await coordinator.command({ profile: "stop", path });
      profiles[phase] = path;
    }
  };
  try {
    await sleep(500);
    const idle = await memory();
    const { tokens } = coordinator.started;
    const fleet = await AgentFleet.register(http, tokens.agent, { agents, slots });
    // Jobs accepted so far in every phase: minus the jobs leased, it is the queue.
    let accepted = 0;
    const countAccepted = () => {
      accepted++;
    };
    const queued = () => accepted - fleet.counters.leasedJobs;

    // Phase 1: ~1,000 queued, kept fed.
    const pre = await enqueueMany(http, tokens.client, {
      count: SMALL_QUEUE,
      concurrency: ENQUEUE_CONCURRENCY,
      deadline: performance.now() + ENQUEUE_TIMEOUT_MS,
    });
    accepted += pre.accepted;
    const throughputQueued1k = await profiled("throughput-1k", () =>
      measureThroughput({
        fleet,
        coordinator,
        feed: () =>
          keepQueueFed(http, tokens.client, {
            depth: SMALL_QUEUE,
            concurrency: FEED_CONCURRENCY,
            queued,
            onAccepted: countAccepted,
          }),
        queued,
        durationMs,
      }),
    );
    // The agents are stopped; let them take what is left so the next phase starts empty.
    await drain(fleet, () => accepted);

    // Phase 2: steady half load on an empty queue.
    const latencyAtHalfLoad = await profiled("latency-half-load", () =>
      measureLatency({
        http,
        clientToken: tokens.client,
        fleet,
        coordinator,
        perSecond: Math.max(1, Math.round(throughputQueued1k.jobsPerSecond / 2)),
        durationMs,
        onAccepted: countAccepted,
      }),
    );
    await drain(fleet, () => accepted);

    // Phase 3: the big queue, with no agent leasing so it really holds them all.
    const enqueued = await profiled("enqueue-big", () =>
      enqueueMany(http, tokens.client, {
        count: bigQueue,
        concurrency: ENQUEUE_CONCURRENCY,
        deadline: performance.now() + ENQUEUE_TIMEOUT_MS,
      }),
    );
    accepted += enqueued.accepted;
    await sleep(500);
    const bigQueueQueued = { ...(await memory()), queued: queued() };

    // Phase 4: throughput with the big queue, kept at its size.
    const depth = queued();
    const throughputQueuedBig = await profiled("throughput-big", () =>
      measureThroughput({
        fleet,
        coordinator,
        feed: () =>
          keepQueueFed(http, tokens.client, {
            depth,
            concurrency: FEED_CONCURRENCY,
            queued,
            onAccepted: countAccepted,
          }),
        queued,
        durationMs,
      }),
    );
    const end = await memory();

    return {
      setup: {
        agents,
        slots,
        durationMs,
        cpus: cpus().length,
        node: process.version,
        coordinatorPid: pid,
        loadAverage1m,
      },
      httpCeiling,
      throughputQueued1k,
      latencyAtHalfLoad,
      enqueueBigQueue: {
        requested: bigQueue,
        accepted: enqueued.accepted,
        seconds: round(enqueued.seconds),
        perSecond: Math.round(enqueued.perSecond),
        concurrency: ENQUEUE_CONCURRENCY,
        complete: enqueued.complete,
        errors: enqueued.errors,
      },
      throughputQueuedBig,
      memory: { idle, bigQueueQueued, end },
      targets: {
        jobsPerSecond: target(5_000, throughputQueued1k.jobsPerSecond, "atLeast"),
        p99QueueMs: target(10, latencyAtHalfLoad.queueMs.p99, "atMost"),
        rssMbBigQueue: target(200, bigQueueQueued.rssMb, "atMost"),
      },
      ...(options.cpuProfileDir ? { cpuProfiles: profiles } : {}),
      elapsedSeconds: round((performance.now() - began) / 1000, 1),
    };
  } finally {
    http.close();
    await coordinator.stop();
  }
}

/**
 * Requests per second a bare node:http server answers to the bench's client at
 * `CEILING_CONCURRENCY`: the most any Node HTTP service could do on this
 * machine with the client beside it, before any routing, auth or SQL.
 */
async function measureHttpCeiling(durationMs: number): Promise<HttpCeilingResult> {
  const server = await launchNullServer();
  const http = new LoopbackJson(server.started.url);
  try {
    const body = '{"free":4,"waitMs":0}';
    let answered = 0;
    const send = async (until: number) => {
      while (performance.now() < until) {
        await http.post("/ceiling", "bench", body);
        answered++;
      }
    };
    // Warm both sides up first, as the coordinator phases do.
    const warm = performance.now() + 500;
    await Promise.all(Array.from({ length: CEILING_CONCURRENCY }, () => send(warm)));
    answered = 0;
    const endCpu = startCpuWindow(server.started.pid);
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CEILING_CONCURRENCY }, () => send(started + durationMs)),
    );
    const seconds = (performance.now() - started) / 1000;
    return {
      concurrency: CEILING_CONCURRENCY,
      requestsPerSecond: Math.round(answered / seconds),
      cpu: endCpu(),
    };
  } finally {
    http.close();
    await server.stop();
  }
}

function target(goal: number, measured: number, kind: "atLeast" | "atMost"): Target {
  return {
    target: goal,
    measured,
    met: kind === "atLeast" ? measured >= goal : measured <= goal,
  };
}

/** Counter totals that a window reports as deltas. */
function snapshot(counters: FleetCounters) {
  return {
    leaseCalls: counters.leaseCalls,
    heartbeats: counters.heartbeats,
    results: counters.results,
    leasedJobs: counters.leasedJobs,
    errors: counters.errors.lease + counters.errors.result + counters.errors.heartbeat,
  };
}

/**
 * Phase 1 alone on a fresh coordinator (this build's, or the serve.js of
 * another build's dist/): jobs/s with ~1,000 queued, kept fed. The
 * side-by-side rows against an older build (bench/compare-builds.ts) run it
 * for both builds in turn.
 *
 * @example
 * const row = await throughputQueued1k({ dist: "/tmp/old-ee031be/dist", durationMs: 5_000 });
 */
export async function throughputQueued1k(
  options: { dist?: string; agents?: number; slots?: number; durationMs?: number } = {},
): Promise<ThroughputResult> {
  const coordinator = await launchCoordinator(options.dist ? { dist: options.dist } : {});
  const http = new LoopbackJson(coordinator.started.url);
  try {
    const { tokens } = coordinator.started;
    const fleet = await AgentFleet.register(http, tokens.agent, {
      agents: options.agents ?? 50,
      slots: options.slots ?? 4,
    });
    let accepted = 0;
    const queued = () => accepted - fleet.counters.leasedJobs;
    const pre = await enqueueMany(http, tokens.client, {
      count: SMALL_QUEUE,
      concurrency: ENQUEUE_CONCURRENCY,
      deadline: performance.now() + ENQUEUE_TIMEOUT_MS,
    });
    accepted += pre.accepted;
    return await measureThroughput({
      fleet,
      coordinator,
      feed: () =>
        keepQueueFed(http, tokens.client, {
          depth: SMALL_QUEUE,
          concurrency: FEED_CONCURRENCY,
          queued,
          onAccepted: () => {
            accepted++;
          },
        }),
      queued,
      durationMs: options.durationMs ?? 10_000,
    });
  } finally {
    http.close();
    await coordinator.stop();
  }
}

/**
 * Starts the agents and the feeding submitter, lets them warm up, measures one
 * window, then stops both (the agents wait for their results in flight).
 */
async function measureThroughput(phase: {
  fleet: AgentFleet;
  coordinator: ChildServer<CoordinatorStarted>;
  feed: () => ReturnType<typeof keepQueueFed>;
  queued: () => number;
  durationMs: number;
}): Promise<ThroughputResult> {
  const queuedAtStart = phase.queued();
  const feeder = phase.feed();
  phase.fleet.start();
  try {
    await sleep(WARMUP_MS);
    const before = {
      at: performance.now(),
      fleet: snapshot(phase.fleet.counters),
      submits: feeder.totals.accepted,
      submitErrors: feeder.totals.errors,
    };
    const endCpu = startCpuWindow(phase.coordinator.started.pid);
    await sleep(phase.durationMs);
    const cpu = endCpu();
    const seconds = (performance.now() - before.at) / 1000;
    const after = snapshot(phase.fleet.counters);
    const jobs = after.results - before.fleet.results;
    const leaseCalls = after.leaseCalls - before.fleet.leaseCalls;
    const submits = feeder.totals.accepted - before.submits;
    const requests = submits + leaseCalls + jobs + (after.heartbeats - before.fleet.heartbeats);
    return {
      queuedAtStart,
      windowSeconds: round(seconds),
      jobsPerSecond: Math.round(jobs / seconds),
      submitsPerSecond: Math.round(submits / seconds),
      leaseCallsPerSecond: Math.round(leaseCalls / seconds),
      jobsPerLease: round((after.leasedJobs - before.fleet.leasedJobs) / Math.max(1, leaseCalls)),
      coordinatorRequestsPerSecond: Math.round(requests / seconds),
      requestsPerJob: round(requests / Math.max(1, jobs)),
      cpu,
      errors: after.errors - before.fleet.errors + feeder.totals.errors - before.submitErrors,
    };
  } finally {
    await feeder.stop();
    await phase.fleet.stop();
  }
}

/**
 * Runs the agents until every accepted job has a result (bounded: a lease
 * lost to an aborted long-poll only comes back after the lease TTL).
 */
async function drain(fleet: AgentFleet, accepted: () => number): Promise<void> {
  fleet.start();
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  while (fleet.counters.results < accepted() && performance.now() < deadline) await sleep(20);
  await fleet.stop();
}

/** Open-loop submits at `perSecond` with per-job timestamps on both sides. */
async function measureLatency(phase: {
  http: LoopbackJson;
  clientToken: string;
  fleet: AgentFleet;
  coordinator: ChildServer<CoordinatorStarted>;
  perSecond: number;
  durationMs: number;
  onAccepted: () => void;
}): Promise<LatencyResult> {
  interface Times {
    sentAt?: number;
    acceptedAt?: number;
    leasedAt?: number;
    finishedAt?: number;
  }
  const jobs = new Map<string, Times>();
  const times = (id: string) => {
    let entry = jobs.get(id);
    if (!entry) {
      entry = {};
      jobs.set(id, entry);
    }
    return entry;
  };
  // The lease may reach its agent before the submit's 201 reaches the submitter: either may come first.
  phase.fleet.observer = {
    leased: (id, at) => {
      times(id).leasedAt = at;
    },
    finished: (id, at) => {
      times(id).finishedAt = at;
    },
  };
  phase.fleet.start();
  const endCpu = startCpuWindow(phase.coordinator.started.pid);
  const started = performance.now();
  let errors = 0;
  try {
    const errorsBefore = snapshot(phase.fleet.counters).errors;
    const submitted = await submitAtRate(phase.http, phase.clientToken, {
      perSecond: phase.perSecond,
      durationMs: phase.durationMs,
      accepted: (id, sentAt, acceptedAt) => {
        phase.onAccepted();
        Object.assign(times(id), { sentAt, acceptedAt });
      },
    });
    const submitSeconds = (performance.now() - started) / 1000;
    const cpu = endCpu();
    // Wait for the last results, bounded.
    const deadline = performance.now() + DRAIN_TIMEOUT_MS;
    const finished = () => [...jobs.values()].every((t) => t.finishedAt !== undefined);
    while (!finished() && performance.now() < deadline) await sleep(20);
    errors = snapshot(phase.fleet.counters).errors - errorsBefore + submitted.errors;

    const measured = [...jobs.values()].filter(
      (t) => t.sentAt !== undefined && t.sentAt >= started + WARMUP_MS,
    );
    const complete = measured.filter(
      (t): t is Required<Times> =>
        t.acceptedAt !== undefined && t.leasedAt !== undefined && t.finishedAt !== undefined,
    );
    return {
      targetPerSecond: phase.perSecond,
      achievedPerSecond: Math.round(submitted.accepted / submitSeconds),
      jobs: complete.length,
      queueMs: distribution(complete.map((t) => Math.max(0, t.leasedAt - t.acceptedAt))),
      queueFromSendMs: distribution(complete.map((t) => t.leasedAt - t.sentAt)),
      submitMs: distribution(complete.map((t) => t.acceptedAt - t.sentAt)),
      submitToResultMs: distribution(complete.map((t) => t.finishedAt - t.sentAt)),
      submitterMaxBehindMs: round(submitted.maxBehindMs),
      cpu,
      errors,
      unfinished: measured.length - complete.length,
    };
  } finally {
    phase.fleet.observer = undefined;
    await phase.fleet.stop();
  }
}
