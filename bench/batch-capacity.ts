/**
 * Coordinator bookkeeping for batches, without Docker: the coordinator runs
 * alone in a child process; simulated agents speaking the batched protocol
 * (bench/coordinator/batch-agent.ts: one lease for all free slots, results
 * back in groups) and a submitter sending NDJSON batches talk to it over real
 * HTTP on loopback. An item "runs" by finishing at once, so what is measured
 * is the coordinator's own work per item: its share of a batch submit, of a
 * lease and of a result group, each through auth, zod and SQLite.
 *
 * Phases:
 * 1. submit one 100,000-item batch as NDJSON (agents stopped): the time to
 *    accept it, then the coordinator's RSS with it all queued;
 * 2. drain it: items/s of lease + result groups alone;
 * 3. the dashboard's batch page on it, drained: `GET /v1/batches/:id/summary`
 *    read the first time (the duration histogram folded from all its items)
 *    and again (read on from where it was), with /healthz asked meanwhile to
 *    show how long the fold holds the event loop;
 * 4. steady state: NDJSON batches of 2,000 items kept coming while the
 *    agents lease and report: items/s of submit + lease + result (headline).
 */
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { NDJSON } from "../protocol/index.js";
import { BatchFleet, type BatchFleetCounters } from "./coordinator/batch-agent.js";
import { type CpuWindow, startCpuWindow } from "./coordinator/cpu.js";
import { LoopbackJson, sleep } from "./coordinator/http.js";
import { launchCoordinator, type ProcessMemory } from "./coordinator/launch.js";
import type { Target } from "./coordinator-capacity.js";
import { round } from "./stats.js";

export interface BatchCapacityOptions {
  /** Simulated agents (default 4). */
  agents?: number;
  /** Slots per agent (default 256, the most one lease asks for). */
  slots?: number;
  /** Items of the big batch (default 100,000). */
  bigBatch?: number;
  /** Measured window of the steady phase (default 10 s). */
  durationMs?: number;
  /** Writes the coordinator's CPU profile of each phase here (`<phase>.cpuprofile`). */
  cpuProfileDir?: string;
}

export interface BatchWindow {
  items: number;
  seconds: number;
  /** Results the coordinator took per second: the headline figure. */
  itemsPerSecond: number;
  /**
   * Items per second of the coordinator's own CPU time: what one free core
   * would do. On a loaded machine the coordinator gets less than a core, and
   * itemsPerSecond shows the share it got as much as its cost.
   */
  itemsPerCoordinatorCpuSecond: number;
  leaseCalls: number;
  itemsPerLease: number;
  groupRequests: number;
  itemsPerGroup: number;
  cpu: CpuWindow;
  errors: number;
}

export interface BatchCapacityResult {
  setup: {
    agents: number;
    slots: number;
    cpus: number;
    node: string;
    loadAverage1m: number;
  };
  /** One NDJSON submit of the big batch: request sent → 201 received. */
  submitBig: { items: number; bodyMb: number; seconds: number; itemsPerSecond: number };
  memory: {
    idle: ProcessMemory;
    /** With the big batch accepted and no agent leasing. */
    bigBatchQueued: ProcessMemory & { queued: number };
    end: ProcessMemory;
  };
  /** The big batch leased and reported (no submits meanwhile). */
  drainBig: BatchWindow;
  /** The batch page's summary of the drained big batch (phase 3). */
  summaryBig: SummaryReads;
  /** Submits, leases and result groups side by side. */
  steady: BatchWindow & { batchItems: number; batchesSubmitted: number };
  targets: {
    /** ≥ 10,000 items/s, steady state. */
    itemsPerSecond: Target;
    /** RSS ≤ 250 MB with the big batch queued. */
    rssMbBigBatch: Target;
  };
  cpuProfiles?: Record<string, string>;
  elapsedSeconds: number;
}

/** `GET /v1/batches/:id/summary` of a finished batch, cold and warm. */
export interface SummaryReads {
  items: number;
  /** The first read: every item's duration folded into the histogram. */
  firstMs: number;
  /** Median of the next reads: only what ended since is read. */
  nextMs: number;
  /** The slowest /healthz answer during the first read (the event loop's longest hold, about). */
  longestHealthzMs: number;
  healthzProbes: number;
}

const STEADY_BATCH_ITEMS = 2_000;
/** Items kept queued ahead of the agents in the steady phase. */
const STEADY_DEPTH = 10_000;
const WARMUP_MS = 1_000;
const DRAIN_TIMEOUT_MS = 120_000;

/** An NDJSON batch body: the spec, then one small input per line. */
function ndjsonBatch(items: number, from = 0): string {
  const lines = [JSON.stringify({ source: "exports.main = (input) => input.seed" })];
  for (let index = 0; index < items; index++) lines.push(`{"seed":${from + index}}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Runs every phase against a fresh coordinator child, then stops it.
 *
 * @example
 * const result = await benchBatchCapacity({ agents: 4, slots: 256 });
 * result.steady.itemsPerSecond;
 */
export async function benchBatchCapacity(
  options: BatchCapacityOptions = {},
): Promise<BatchCapacityResult> {
  const agents = options.agents ?? 4;
  const slots = options.slots ?? 256;
  const bigBatch = options.bigBatch ?? 100_000;
  const durationMs = options.durationMs ?? 10_000;
  const began = performance.now();
  const loadAverage1m = round(loadavg()[0] ?? 0, 1);

  const coordinator = await launchCoordinator();
  const { pid } = coordinator.started;
  const { tokens } = coordinator.started;
  const http = new LoopbackJson(coordinator.started.url);
  const profiles: Record<string, string> = {};
  const profiled = async <T>(phase: string, run: () => Promise<T>): Promise<T> => {
    if (!options.cpuProfileDir) return run();
    await coordinator.command({ profile: "start" });
    try {
      return await run();
    } finally {
      const path = join(options.cpuProfileDir, `batch-${phase}.cpuprofile`);
      await coordinator.command({ profile: "stop", path });
      profiles[phase] = path;
    }
  };
  let lastBatchId = "";
  const submit = async (body: string): Promise<number> => {
    const answer = await http.post("/batches", tokens.client, body, undefined, NDJSON);
    if (answer.status !== 201) {
      throw new Error(`batch submit answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    const { id, total } = answer.body as { id: string; total: number };
    lastBatchId = id;
    return total;
  };

  try {
    await sleep(500);
    const idle = coordinator.memory();
    const fleet = await BatchFleet.register(http, tokens.agent, { agents, slots });

    // Phase 1: one big NDJSON submit, nobody leasing.
    const bigBody = ndjsonBatch(bigBatch);
    const submitBig = await profiled("submit-big", async () => {
      const sent = performance.now();
      const total = await submit(bigBody);
      const seconds = (performance.now() - sent) / 1000;
      return {
        items: total,
        bodyMb: round(Buffer.byteLength(bigBody) / 2 ** 20, 2),
        seconds: round(seconds, 2),
        itemsPerSecond: Math.round(total / seconds),
      };
    });
    await sleep(500);
    const bigBatchQueued = { ...coordinator.memory(), queued: submitBig.items };
    const bigBatchId = lastBatchId;

    // Phase 2: drain it.
    const drainBig = await profiled("drain-big", async () => {
      const before = { ...fleet.counters };
      const endCpu = startCpuWindow(pid);
      const started = performance.now();
      fleet.start();
      const deadline = started + DRAIN_TIMEOUT_MS;
      while (
        fleet.counters.results - before.results < submitBig.items &&
        performance.now() < deadline
      ) {
        await sleep(10);
      }
      const seconds = (performance.now() - started) / 1000;
      const cpu = endCpu();
      await fleet.stop();
      return window(before, fleet.counters, seconds, cpu);
    });

    // Phase 3: the batch page on the drained batch.
    const summaryBig = await profiled("summary-big", () =>
      readSummaries(coordinator.started.url, tokens.client, bigBatchId, submitBig.items),
    );

    // Phase 4: submits, leases and results together.
    const steady = await profiled("steady", async () => {
      let submittedItems = fleet.counters.results;
      let batchesSubmitted = 0;
      let stopping = false;
      let submitErrors = 0;
      const body = ndjsonBatch(STEADY_BATCH_ITEMS);
      const feeder = (async () => {
        while (!stopping) {
          if (submittedItems - fleet.counters.results >= STEADY_DEPTH) {
            await sleep(2);
            continue;
          }
          try {
            submittedItems += await submit(body);
            batchesSubmitted++;
          } catch {
            submitErrors++;
            await sleep(50);
          }
        }
      })();
      fleet.start();
      try {
        await sleep(WARMUP_MS);
        const before = { ...fleet.counters };
        const batchesBefore = batchesSubmitted;
        const endCpu = startCpuWindow(pid);
        const started = performance.now();
        await sleep(durationMs);
        const seconds = (performance.now() - started) / 1000;
        const cpu = endCpu();
        const measured = window(before, fleet.counters, seconds, cpu);
        return {
          ...measured,
          errors: measured.errors + submitErrors,
          batchItems: STEADY_BATCH_ITEMS,
          batchesSubmitted: batchesSubmitted - batchesBefore,
        };
      } finally {
        stopping = true;
        await feeder;
        await fleet.stop();
      }
    });
    const end = coordinator.memory();

    return {
      setup: { agents, slots, cpus: cpus().length, node: process.version, loadAverage1m },
      submitBig,
      memory: { idle, bigBatchQueued, end },
      drainBig,
      summaryBig,
      steady,
      targets: {
        itemsPerSecond: {
          target: 10_000,
          measured: steady.itemsPerSecond,
          met: steady.itemsPerSecond >= 10_000,
        },
        rssMbBigBatch: {
          target: 250,
          measured: bigBatchQueued.rssMb,
          met: bigBatchQueued.rssMb <= 250,
        },
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
 * Reads a finished batch's summary the first time, asking /healthz every
 * 5 ms meanwhile, then five times more. fetch, not LoopbackJson: a few GETs,
 * off the hot path.
 */
async function readSummaries(
  baseUrl: string,
  token: string,
  batchId: string,
  items: number,
): Promise<SummaryReads> {
  const timedGet = async (path: string) => {
    const started = performance.now();
    const response = await fetch(`${baseUrl}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return performance.now() - started;
  };
  const path = `/v1/batches/${batchId}/summary`;
  let reading = true;
  let longest = 0;
  let probes = 0;
  const prober = (async () => {
    while (reading) {
      longest = Math.max(longest, await timedGet("/healthz"));
      probes++;
      await sleep(5);
    }
  })();
  const firstMs = await timedGet(path);
  reading = false;
  await prober;
  const next: number[] = [];
  for (let i = 0; i < 5; i++) next.push(await timedGet(path));
  next.sort((a, b) => a - b);
  return {
    items,
    firstMs: round(firstMs, 1),
    nextMs: round(next[2] ?? 0, 1),
    longestHealthzMs: round(longest, 1),
    healthzProbes: probes,
  };
}

function window(
  before: BatchFleetCounters,
  after: BatchFleetCounters,
  seconds: number,
  cpu: CpuWindow,
): BatchWindow {
  const items = after.results - before.results;
  const leaseCalls = after.leaseCalls - before.leaseCalls;
  const groupRequests = after.groupRequests - before.groupRequests;
  return {
    items,
    seconds: round(seconds, 2),
    itemsPerSecond: Math.round(items / seconds),
    itemsPerCoordinatorCpuSecond: Math.round(
      items / seconds / Math.max(0.01, cpu.coordinatorCores),
    ),
    leaseCalls,
    itemsPerLease: round((after.leasedItems - before.leasedItems) / Math.max(1, leaseCalls)),
    groupRequests,
    itemsPerGroup: round(items / Math.max(1, groupRequests)),
    cpu,
    errors: after.errors - before.errors,
  };
}
