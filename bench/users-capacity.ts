/**
 * Fair share's cost, without Docker or HTTP: the coordinator's store in this
 * process, the same 100,000 queued jobs once as one user's and once as 50
 * users' × 2,000, and the same work on each: 50 agents of 4 slots lease,
 * post their results, and each job done is replaced by a new single job
 * (of the next user in turn), so the queue stays full. What differs between
 * the two runs is only who owns the work, so the ratio of their jobs/s is
 * what fair share's bookkeeping costs; HTTP, auth and zod cost the same per
 * request whoever calls, and are measured by the coordinator-capacity bench.
 *
 * Measured: jobs through enqueue → lease → result (the store's part of the
 * coordinator's bookkeeping), as jobs/s and as CPU per job (the ratio is
 * judged on CPU: on a shared machine jobs/s moves with others' load), and
 * each lease call's latency, wall and CPU.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openStore } from "../coordinator/store/index.js";
import { DEFAULT_LIMITS, type NewBatch, type Outcome } from "../protocol/index.js";
import { type Distribution, distribution, round } from "./stats.js";

export interface UsersCapacityOptions {
  /** Users in the multi-user run (default 50). */
  users?: number;
  /** Jobs queued per user there; the single user gets users × this (default 2,000). */
  queuedPerUser?: number;
  /** Measured window of each run (default 5 s). */
  windowMs?: number;
}

/** One run: its jobs/s and the latency of every lease call. */
export interface StoreRun {
  owners: number;
  queued: number;
  jobs: number;
  seconds: number;
  jobsPerSecond: number;
  /** This process's CPU (user + system) per job done: the bookkeeping's cost, whatever else runs. */
  cpuMsPerJob: number;
  /** Wall time of each lease call (on a loaded machine, includes waiting for a core and the disk). */
  leaseMs: Distribution;
  /** CPU time of each lease call (this process's user + system). */
  leaseCpuMs: Distribution;
  /** How long queuing the 100,000 jobs (50 batches) took. */
  fillSeconds: number;
}

export interface UsersCapacityResult {
  setup: {
    users: number;
    queuedPerUser: number;
    agents: number;
    slots: number;
    windowMs: number;
    node: string;
    /** The machine's 1-minute load average when the bench began (others' load skews it). */
    loadAverage1m: number;
  };
  singleUser: StoreRun;
  multiUser: StoreRun;
  targets: {
    /** Single-user CPU per job ÷ multi-user CPU per job ≥ 0.8 (within 20%). */
    ratio: { target: number; measured: number; met: boolean };
    /** p99 lease latency with 50 users × 2,000 queued ≤ 10 ms. */
    p99LeaseMs: { target: number; measured: number; met: boolean };
  };
}

const AGENTS = 50;
const SLOTS = 4;
const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 1 } };
const SOURCE = "exports.main = () => 1";

function batchOf(count: number): NewBatch {
  return {
    spec: { source: SOURCE, filename: "main.js", retries: 0, isolate: false },
    inputs: Array.from({ length: count }, (_, index) => String(index)),
  };
}

/** A store with `owners` users, each with `perOwner` queued, and its 50 agents. */
async function prepare(owners: number, perOwner: number) {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-bench-users-"));
  const store = openStore(dataDir, { leaseTtlMs: 60_000, maxAttempts: 3 });
  const now = Date.now();
  const names =
    owners === 1 ? ["default"] : Array.from({ length: owners }, (_, index) => `user${index + 1}`);
  for (const name of names) {
    if (name !== "default") await store.addUser({ name }, `hash-${name}`, now);
  }
  const filling = performance.now();
  // The same 50 batches either way: one per user, or 50 of the one user's.
  const batches = owners === 1 ? 50 : owners;
  const perBatch = (owners * perOwner) / batches;
  for (let index = 0; index < batches; index++) {
    await store.enqueueBatch(batchOf(perBatch), DEFAULT_LIMITS, now, names[index % names.length]);
  }
  const fillSeconds = round((performance.now() - filling) / 1000);
  const agents: string[] = [];
  for (let index = 0; index < AGENTS; index++) {
    const agent = await store.registerAgent(
      { name: `bench-${index}`, hostname: "bench", slots: SLOTS, version: "bench", labels: {} },
      `agent-${index}`,
      now,
    );
    agents.push(agent.id);
  }
  const totals = {
    jobs: 0,
    seconds: 0,
    cpuMs: 0,
    leaseMs: [] as number[],
    leaseCpuMs: [] as number[],
  };
  let turn = 0;
  return {
    owners,
    queued: owners * perOwner,
    fillSeconds,
    totals,
    /** One measured window: agents lease, post results, and each job done is replaced. */
    async window(windowMs: number): Promise<void> {
      const started = performance.now();
      const cpuStarted = process.cpuUsage();
      while (performance.now() - started < windowMs) {
        for (const agentId of agents) {
          const at = Date.now();
          const before = performance.now();
          const cpuBefore = process.cpuUsage();
          const leased = await store.lease(agentId, SLOTS, at);
          const cpu = process.cpuUsage(cpuBefore);
          totals.leaseMs.push(performance.now() - before);
          totals.leaseCpuMs.push((cpu.user + cpu.system) / 1000);
          await store.completeMany(
            agentId,
            leased.map((job) => ({ leaseId: job.leaseId, outcome: OK })),
            at,
          );
          // Each job done is replaced, by the next user in turn: the queue stays full.
          for (let index = 0; index < leased.length; index++) {
            await store.enqueue({ source: SOURCE }, at, names[turn++ % names.length]);
          }
          totals.jobs += leased.length;
        }
      }
      const cpu = process.cpuUsage(cpuStarted);
      totals.seconds += (performance.now() - started) / 1000;
      totals.cpuMs += (cpu.user + cpu.system) / 1000;
    },
    result(): StoreRun {
      return {
        owners,
        queued: owners * perOwner,
        jobs: totals.jobs,
        seconds: round(totals.seconds),
        jobsPerSecond: Math.round(totals.jobs / totals.seconds),
        cpuMsPerJob: round(totals.cpuMs / totals.jobs, 4),
        leaseMs: distribution(totals.leaseMs),
        leaseCpuMs: distribution(totals.leaseCpuMs),
        fillSeconds,
      };
    },
    async close(): Promise<void> {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs the single-user and the multi-user store side by side, both filled
 * first, then measured in alternating windows (single, multi, single, multi).
 *
 * @example
 * const result = await benchUsersCapacity({ users: 50, queuedPerUser: 2_000 });
 * result.targets.ratio.met;
 */
export async function benchUsersCapacity(
  options: UsersCapacityOptions = {},
): Promise<UsersCapacityResult> {
  const users = options.users ?? 50;
  const queuedPerUser = options.queuedPerUser ?? 2_000;
  const windowMs = options.windowMs ?? 5_000;
  const loadAverage1m = round(loadavg()[0] ?? 0, 1);
  const single = await prepare(1, users * queuedPerUser);
  const multi = await prepare(users, queuedPerUser);
  try {
    // Interleaved windows, so a burst of other load on the machine hits both alike.
    for (let round = 0; round < 2; round++) {
      await single.window(windowMs / 2);
      await multi.window(windowMs / 2);
    }
  } finally {
    await single.close();
    await multi.close();
  }
  const singleUser = single.result();
  const multiUser = multi.result();
  // CPU per job, not jobs/s: this process's own work, whatever else the machine runs.
  const ratio = round(singleUser.cpuMsPerJob / multiUser.cpuMsPerJob, 3);
  return {
    setup: {
      users,
      queuedPerUser,
      agents: AGENTS,
      slots: SLOTS,
      windowMs,
      node: process.version,
      loadAverage1m,
    },
    singleUser,
    multiUser,
    targets: {
      ratio: { target: 0.8, measured: ratio, met: ratio >= 0.8 },
      p99LeaseMs: {
        target: 10,
        measured: multiUser.leaseMs.p99,
        met: multiUser.leaseMs.p99 <= 10,
      },
    },
  };
}
