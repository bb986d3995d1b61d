/**
 * This build against another one, side by side in one run, on SQLite
 * (BENCH_COMPARE_DIST=/path/to/other/dist; bench/run.ts says how to build
 * one). The other build's coordinator is started from its own
 * dist/bench/coordinator/serve.js (and, for the latency row, its own
 * dist/client/cli.js for coordinator and agent); this build's simulated
 * agents, submitter and HTTP client talk to both, so only the coordinator
 * (and its store) differs. Rounds alternate which build goes first, so a
 * noisy neighbour on the machine weighs on both alike.
 *
 * BENCH_COMPARE_THIS_DIST=/path/to/a/dist puts a third build in this
 * build's place (its coordinator and its CLI; the simulated agents and the
 * client stay this build's), so two arbitrary builds can be compared, e.g. a
 * commit against its parent; the main module also takes several other dists
 * and compares this build (or the one named) with each in turn.
 *
 * Rows:
 * - coordinator capacity, phase 1 (jobs/s with ~1,000 queued): the
 *   simulated agents' protocol (lease, result, heartbeat) is unchanged since
 *   ee031be, so any older build of that protocol can be compared;
 * - batch bookkeeping (items/s, NDJSON submits, leases of many, result
 *   groups): left out when the other build has no batches;
 * - a warm single job over HTTP (real Docker), when BENCH_COMPARE_SAMPLES > 0.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { throughputQueued1k } from "./coordinator-capacity.js";
import { singleJobShare } from "./coordinator-capacity-single.js";
import { interleavedHttp } from "./e2e/latency.js";
import { type ClusterProcesses, launchCluster } from "./e2e/processes.js";
import { runConfiguration } from "./postgres-bookkeeping.js";
import { type Distribution, round } from "./stats.js";

export interface CompareOptions {
  /** Rounds of each throughput row per build (default 3). */
  rounds?: number;
  /** Measured window of each round (default 5 s). */
  durationMs?: number;
  /** Warm HTTP jobs per build (default 20; 0 leaves the latency row out). */
  latencySamples?: number;
  /**
   * A build's dist/ that runs in this build's place (default: this build);
   * the load generators stay this build's.
   */
  thisDist?: string;
  /** The capacity rows (default true); false runs only the single-job row (BENCH_COMPARE_CAPACITY=0). */
  capacity?: boolean;
}

/** One row measured on both builds: each round's figure, the medians, and this ÷ other. */
export interface ComparedRow {
  unit: string;
  thisBuild: number[];
  otherBuild: number[];
  thisMedian: number;
  otherMedian: number;
  /** this build's median ÷ the other's (above 1: this build does more, or takes longer for latency). */
  ratio: number;
}

export interface CompareResult {
  otherDist: string;
  /** The build measured as "this build", when not this one (CompareOptions.thisDist). */
  thisDist?: string;
  loadAverage: { atStart: number; atEnd: number };
  /** null when the capacity rows were left out (CompareOptions.capacity). */
  coordinatorJobsPerSecond: ComparedRow | null;
  /**
   * The coordinator's CPU per job in the same rounds (its cores ÷ jobs/s):
   * on a machine others share, its own work per job moves far less than
   * its throughput, which falls with the CPU left to it.
   */
  coordinatorCpuMsPerJob: ComparedRow | null;
  /** The coordinator's share of a warm single job, p50 per round (bench/coordinator-capacity-single.ts). */
  singleJob: {
    /** The coordinator's CPU per job (lower is better): the steadiest figure on a shared machine. */
    cpuMsPerJob: ComparedRow;
    submitP50Ms: ComparedRow;
    resultP50Ms: ComparedRow;
    totalP50Ms: ComparedRow;
  };
  /** null when the other build has no batch routes. */
  batchItemsPerSecond: ComparedRow | null;
  /** p50 of the warm single job over HTTP (ms), or null when left out. */
  warmHttpP50Ms: ComparedRow | null;
  warmHttp: { thisBuild: Distribution; otherBuild: Distribution } | null;
  elapsedSeconds: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

function compared(unit: string, thisBuild: number[], otherBuild: number[]): ComparedRow {
  const thisMedian = median(thisBuild);
  const otherMedian = median(otherBuild);
  return {
    unit,
    thisBuild,
    otherBuild,
    thisMedian,
    otherMedian,
    ratio: round(thisMedian / Math.max(1e-9, otherMedian), 3),
  };
}

/** `rounds` rounds of `measure` on each build, alternating which goes first. */
async function interleaved<T>(
  rounds: number,
  measure: (dist: string | undefined) => Promise<T>,
  otherDist: string,
  thisDist?: string,
): Promise<{ thisBuild: T[]; otherBuild: T[] }> {
  const thisBuild: T[] = [];
  const otherBuild: T[] = [];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? ["this", "other"] : ["other", "this"];
    for (const which of order) {
      const value = await measure(which === "this" ? thisDist : otherDist);
      (which === "this" ? thisBuild : otherBuild).push(value);
    }
  }
  return { thisBuild, otherBuild };
}

/** A row left out: no rounds on either build. */
const skipped = async <T>(
  ..._args: Parameters<typeof interleaved<T>>
): Promise<{ thisBuild: T[]; otherBuild: T[] }> => ({ thisBuild: [], otherBuild: [] });

/**
 * Runs the side-by-side rows against the build in `otherDist` (its dist/
 * folder, built with `npx tsc -p .`).
 *
 * @example
 * const result = await compareBuilds("/tmp/old-ee031be/dist", { rounds: 3 });
 * result.coordinatorJobsPerSecond.ratio;
 */
export async function compareBuilds(
  otherDist: string,
  options: CompareOptions = {},
  loadAverage: () => number = () => 0,
): Promise<CompareResult> {
  const began = performance.now();
  const atStart = round(loadAverage(), 1);
  const { thisDist } = options;
  for (const dist of thisDist ? [otherDist, thisDist] : [otherDist]) {
    if (!existsSync(join(dist, "bench", "coordinator", "serve.js"))) {
      throw new Error(`${dist} has no bench/coordinator/serve.js: not a built labrun dist/`);
    }
  }
  const rounds = options.rounds ?? 3;
  const durationMs = options.durationMs ?? 5_000;

  const withCapacity = options.capacity ?? true;
  const capacity = await (withCapacity ? interleaved : skipped)(
    rounds,
    async (dist) => {
      const { jobsPerSecond, cpu } = await throughputQueued1k({
        ...(dist ? { dist } : {}),
        durationMs,
      });
      return {
        jobsPerSecond,
        cpuMsPerJob: round((cpu.coordinatorCores * 1000) / jobsPerSecond, 3),
      };
    },
    otherDist,
    thisDist,
  );
  const single = await interleaved(
    rounds,
    (dist) => singleJobShare(dist ? { dist } : {}),
    otherDist,
    thisDist,
  );

  // Batches came after ee031be: an older build without them has no such row.
  const hasBatches =
    withCapacity &&
    [otherDist, ...(thisDist ? [thisDist] : [])].every((dist) =>
      existsSync(join(dist, "coordinator", "routes", "batches.js")),
    );
  const batches = hasBatches
    ? await interleaved(
        rounds,
        async (dist) =>
          (
            await runConfiguration(
              "",
              { store: "sqlite", coordinators: 1, ...(dist ? { dist } : {}) },
              { agents: 4, slots: 256, durationMs },
            )
          ).itemsPerSecond,
        otherDist,
        thisDist,
      )
    : null;

  const samples = options.latencySamples ?? 20;
  let warmHttp: CompareResult["warmHttp"] = null;
  if (samples > 0) {
    const clusters: ClusterProcesses[] = [];
    try {
      const thisBuild = await launchCluster({
        slots: 1,
        warm: 1,
        ...(thisDist ? { dist: thisDist } : {}),
      });
      clusters.push(thisBuild);
      const otherBuild = await launchCluster({ slots: 1, warm: 1, dist: otherDist });
      clusters.push(otherBuild);
      await sleep(3_000); // the pools fill
      warmHttp = await interleavedHttp({ thisBuild, otherBuild }, samples);
    } finally {
      await Promise.all(clusters.map((cluster) => cluster.stop()));
    }
  }
  return {
    otherDist,
    ...(thisDist ? { thisDist } : {}),
    loadAverage: { atStart, atEnd: round(loadAverage(), 1) },
    coordinatorJobsPerSecond: withCapacity
      ? compared(
          "jobs/s",
          capacity.thisBuild.map((r) => r.jobsPerSecond),
          capacity.otherBuild.map((r) => r.jobsPerSecond),
        )
      : null,
    coordinatorCpuMsPerJob: withCapacity
      ? compared(
          "ms",
          capacity.thisBuild.map((r) => r.cpuMsPerJob),
          capacity.otherBuild.map((r) => r.cpuMsPerJob),
        )
      : null,
    singleJob: {
      cpuMsPerJob: compared(
        "ms",
        single.thisBuild.map((r) => r.cpuMsPerJob),
        single.otherBuild.map((r) => r.cpuMsPerJob),
      ),
      submitP50Ms: compared(
        "ms",
        single.thisBuild.map((r) => r.submitMs.p50),
        single.otherBuild.map((r) => r.submitMs.p50),
      ),
      resultP50Ms: compared(
        "ms",
        single.thisBuild.map((r) => r.resultMs.p50),
        single.otherBuild.map((r) => r.resultMs.p50),
      ),
      totalP50Ms: compared(
        "ms",
        single.thisBuild.map((r) => r.totalMs.p50),
        single.otherBuild.map((r) => r.totalMs.p50),
      ),
    },
    batchItemsPerSecond: batches
      ? compared("items/s", batches.thisBuild, batches.otherBuild)
      : null,
    warmHttpP50Ms: warmHttp
      ? compared("ms", [warmHttp.thisBuild.p50], [warmHttp.otherBuild.p50])
      : null,
    warmHttp,
    elapsedSeconds: round((performance.now() - began) / 1000, 1),
  };
}
