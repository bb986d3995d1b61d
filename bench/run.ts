/**
 * `npm run bench`: everything side by side in one run on this machine, so the
 * ratios compare like with like. Writes bench/results/latest.json and
 * bench/results/latest.md (the table the README quotes) and prints the table.
 *
 * Environment: BENCH_SAMPLES (latency jobs per measure, default 30),
 * BENCH_BURST (burst jobs, default 200), BENCH_PARALLELISM (default 4),
 * BENCH_SKIP_COORDINATOR=1 to leave out the Docker-free coordinator part (with
 * the lease against the size of other batches' programs, bench/lease-programs.ts),
 * BENCH_MAP_ITEMS (the `labrun map` row's items, default 2000; 0 leaves it out),
 * BENCH_SKIP_PROGRAMS=1 to leave out the programs rows (bundling, a 2 MiB bundle),
 * BENCH_COMPARE_BIN (another build's bin/labrun.js for a side-by-side trivial submit),
 * BENCH_SKIP_POSTGRES=1 to leave out every PostgreSQL row (the driver rows of
 * bench/postgres-driver.ts, the bookkeeping by store of
 * bench/postgres-bookkeeping.ts, the warm job by store of bench/e2e/store-latency.ts,
 * the PostgreSQL lease row of bench/lease-programs.ts),
 * BENCH_SKIP_PG_BOOKKEEPING=1 / BENCH_SKIP_PG_LATENCY=1 to leave out one of the last two.
 *
 * Side by side against an older build (bench/compare-builds.ts):
 * BENCH_COMPARE_DIST=/path/to/other/dist runs the coordinator capacity row
 * (and the batch bookkeeping row when it has batches, and the warm HTTP job
 * unless BENCH_COMPARE_SAMPLES=0) for this build and that one, interleaved,
 * on SQLite, with the ratio. To build an old commit:
 *
 *   git worktree add --detach /tmp/old-ee031be ee031be
 *   cp -a node_modules /tmp/old-ee031be/ && (cd /tmp/old-ee031be && npx tsc -p .)
 *   BENCH_COMPARE_DIST=/tmp/old-ee031be/dist npm run bench
 *
 * (or those rows alone: node dist/bench/compare-builds.main.js /tmp/old-ee031be/dist).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { connectDocker } from "../agent/docker.js";
import { ensureRunnerImage } from "../agent/sandbox/image.js";
import { containerOptions, DEFAULT_SANDBOX } from "../agent/sandbox/options.js";
import { ensureDevPostgres } from "../coordinator/store/postgres/devServer.js";
import { DEFAULT_LIMITS } from "../protocol/index.js";
import { benchBatchCapacity } from "./batch-capacity.js";
import { type CompareResult, compareBuilds } from "./compare-builds.js";
import { benchCoordinatorCapacity } from "./coordinator-capacity.js";
import { dockerRunFlags } from "./e2e/baselines.js";
import { measureWarmBreakdown } from "./e2e/breakdown.js";
import { dockerRun, interleavedLatency, labrunHttp } from "./e2e/latency.js";
import { benchMapThroughput } from "./e2e/map-throughput.js";
import { warmContainersMemory } from "./e2e/pool-memory.js";
import { launchCluster, rssMb } from "./e2e/processes.js";
import { benchPrograms, type ProgramsBench, renderPrograms } from "./e2e/programs.js";
import { benchPython, type PythonBench, renderPython } from "./e2e/python.js";
import { type StoreLatency, warmLatencyByStore } from "./e2e/store-latency.js";
import { dockerChurn, labrunBurst } from "./e2e/throughput.js";
import {
  benchLeaseByProgramSize,
  type LeaseByProgramSize,
  renderLeaseByProgramSize,
} from "./lease-programs.js";
import { type BookkeepingResult, benchBookkeeping } from "./postgres-bookkeeping.js";
import {
  benchPostgresDriver,
  type PostgresDriverBench,
  renderPostgresDriver,
} from "./postgres-driver.js";
import {
  type BenchResults,
  renderBookkeeping,
  renderComparison,
  renderMarkdown,
  renderStoreLatency,
} from "./report.js";
import { round } from "./stats.js";
import { benchUsersCapacity } from "./users-capacity.js";

const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 30);
const BURST = Number(process.env.BENCH_BURST ?? 200);
const PARALLELISM = Number(process.env.BENCH_PARALLELISM ?? 4);
const RESULTS_DIR = fileURLToPath(new URL("../../bench/results/", import.meta.url));

function step(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

async function main(): Promise<void> {
  const began = Date.now();
  const loadAtStart = round(loadavg()[0] ?? 0, 1);
  const docker = await connectDocker();
  const image = await ensureRunnerImage(docker, pino({ level: "silent" }));
  const options = containerOptions({
    image,
    jobId: "bench",
    agentName: "bench",
    limits: DEFAULT_LIMITS,
    sandbox: DEFAULT_SANDBOX,
  });
  const flags = dockerRunFlags(options);
  const version = (await docker.version()) as { Version?: string };
  const workDir = mkdtempSync(join(tmpdir(), "labrun-bench-"));

  step(`latency: docker run × ${SAMPLES}`);
  const docker1 = await dockerRun(SAMPLES, flags, image);

  step(`latency: labrun cold (warm pool off) × ${SAMPLES}`);
  const cold = await launchCluster({ slots: 1, warm: 0 });
  let coldHttp: Awaited<ReturnType<typeof labrunHttp>>;
  let agentIdleRssMb: number;
  try {
    await sleep(1_000);
    agentIdleRssMb = rssMb(cold.agentPid);
    coldHttp = await labrunHttp(cold, SAMPLES);
  } finally {
    await cold.stop();
  }

  step(
    `latency: labrun warm × ${SAMPLES} rounds of node -e 1, HTTP job, labrun submit|--version|status|jobs; burst of ${BURST}`,
  );
  const warm = await launchCluster({ slots: PARALLELISM, warm: PARALLELISM });
  let user: Awaited<ReturnType<typeof interleavedLatency>>;
  let burst: Awaited<ReturnType<typeof labrunBurst>>;
  let agentWarmRssMb: number;
  let pool: Awaited<ReturnType<typeof warmContainersMemory>>;
  try {
    await sleep(3_000); // the pool fills
    agentWarmRssMb = rssMb(warm.agentPid);
    pool = await warmContainersMemory(docker, warm.agentName);
    user = await interleavedLatency(warm, SAMPLES, workDir);
    await sleep(1_000);
    burst = await labrunBurst(warm, BURST, PARALLELISM);
  } finally {
    await warm.stop();
  }

  step(`warm job breakdown: ${SAMPLES} traced jobs`);
  const traceDir = join(workDir, "trace");
  mkdirSync(traceDir);
  const breakdown = await measureWarmBreakdown(
    docker,
    options,
    SAMPLES,
    (trace) => launchCluster({ slots: PARALLELISM, warm: PARALLELISM, trace }),
    traceDir,
  );

  step(`throughput: ${BURST} × docker run at parallelism ${PARALLELISM}`);
  const churn = await dockerChurn(flags, image, BURST, PARALLELISM);

  // `labrun map` over BENCH_MAP_ITEMS (default 2,000; 0 leaves it out) at parallelism 2.
  const mapItems = Number(process.env.BENCH_MAP_ITEMS ?? 2_000);
  let mapThroughput: Awaited<ReturnType<typeof benchMapThroughput>> | null = null;
  if (mapItems > 0) {
    step(`throughput: labrun map × ${mapItems} on 2 slots, and docker run churn at parallelism 2`);
    mapThroughput = await benchMapThroughput({ items: mapItems, slots: 2, flags, image });
  }

  let coordinator: Awaited<ReturnType<typeof benchCoordinatorCapacity>> | null = null;
  if (process.env.BENCH_SKIP_COORDINATOR !== "1") {
    step("coordinator capacity (simulated agents over loopback HTTP, no Docker)");
    coordinator = await benchCoordinatorCapacity();
  }
  // Batch bookkeeping (bench/batch-capacity.ts; alone: node dist/bench/batch-capacity.main.js).
  let batchCapacity: Awaited<ReturnType<typeof benchBatchCapacity>> | null = null;
  if (process.env.BENCH_SKIP_COORDINATOR !== "1") {
    step("coordinator with batches (NDJSON submits, result groups, no Docker)");
    batchCapacity = await benchBatchCapacity();
  }
  // Fair share's bookkeeping, 50 users × 2,000 queued against one user (bench/users-capacity.ts).
  let usersCapacity: Awaited<ReturnType<typeof benchUsersCapacity>> | null = null;
  if (process.env.BENCH_SKIP_COORDINATOR !== "1") {
    step("coordinator store with 50 users × 2,000 queued against one user (no Docker, no HTTP)");
    usersCapacity = await benchUsersCapacity();
  }
  // A lease against the size of the programs of the batches it does not deal
  // from (bench/lease-programs.ts; no Docker, no HTTP): SQLite, and
  // PostgreSQL unless BENCH_SKIP_POSTGRES=1.
  // The PostgreSQL server of every PostgreSQL row, started once if need be.
  const pgUrl =
    process.env.BENCH_SKIP_POSTGRES === "1"
      ? undefined
      : (process.env.LABRUN_TEST_PG_URL ?? ensureDevPostgres("labrun_bench"));
  let leasePrograms: LeaseByProgramSize[] | null = null;
  if (process.env.BENCH_SKIP_COORDINATOR !== "1") {
    step("a lease with 19 other batches running, their programs of 1 KiB vs 1 MiB, by store");
    leasePrograms = await benchLeaseByProgramSize(pgUrl);
  }
  // Python rows (BENCH_SKIP_PYTHON=1 leaves them out): bench/e2e/python.ts.
  const python =
    process.env.BENCH_SKIP_PYTHON === "1" ? null : await benchPython(docker, SAMPLES, step);
  // Programs rows (BENCH_SKIP_PROGRAMS=1 leaves them out): bench/e2e/programs.ts.
  const programs =
    process.env.BENCH_SKIP_PROGRAMS === "1"
      ? null
      : await benchPrograms(SAMPLES, workDir, step, undefined, (job, bytes) => {
          const bundleTrace = join(workDir, "trace-bundle");
          mkdirSync(bundleTrace);
          return measureWarmBreakdown(
            docker,
            options,
            SAMPLES,
            (trace) => launchCluster({ slots: PARALLELISM, warm: PARALLELISM, trace }),
            bundleTrace,
            job,
            bytes,
          );
        });
  // The PostgreSQL driver rows (BENCH_SKIP_POSTGRES=1 leaves them out): bench/postgres-driver.ts.
  let postgresDriver: PostgresDriverBench | null = null;
  let bookkeeping: BookkeepingResult | null = null;
  let storeLatency: StoreLatency | null = null;
  if (pgUrl !== undefined) {
    step("PostgreSQL drivers: prepared UPDATE … RETURNING, a burst, unnest() inserts");
    const url = pgUrl;
    postgresDriver = await benchPostgresDriver(url);
    // Bookkeeping by store: SQLite, PostgreSQL with 1 and 2 coordinators (~40 s, no Docker).
    if (process.env.BENCH_SKIP_PG_BOOKKEEPING !== "1") {
      step("batch bookkeeping by store: SQLite, PostgreSQL × 1 and × 2 coordinators");
      bookkeeping = await benchBookkeeping(url);
    }
    // A warm single job on each store, interleaved (real Docker).
    if (process.env.BENCH_SKIP_PG_LATENCY !== "1") {
      step(`warm single job by store: SQLite and PostgreSQL × ${SAMPLES}, interleaved`);
      storeLatency = await warmLatencyByStore(SAMPLES, url);
    }
  }
  // This build against another (BENCH_COMPARE_DIST): bench/compare-builds.ts.
  let comparison: CompareResult | null = null;
  if (process.env.BENCH_COMPARE_DIST) {
    step(`side by side with ${process.env.BENCH_COMPARE_DIST} (SQLite, interleaved)`);
    comparison = await compareBuilds(
      process.env.BENCH_COMPARE_DIST,
      {
        rounds: Number(process.env.BENCH_COMPARE_ROUNDS ?? 3),
        latencySamples: Number(process.env.BENCH_COMPARE_SAMPLES ?? 20),
      },
      () => loadavg()[0] ?? 0,
    );
  }
  rmSync(workDir, { recursive: true, force: true });

  const results: BenchResults & {
    python: PythonBench | null;
    programs: ProgramsBench | null;
    postgresDriver: PostgresDriverBench | null;
    bookkeeping: BookkeepingResult | null;
    storeLatency: StoreLatency | null;
    leasePrograms: LeaseByProgramSize[] | null;
    comparison: CompareResult | null;
  } = {
    date: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model ?? "unknown",
      cores: cpus().length,
      memoryGb: Math.round(totalmem() / 2 ** 30),
      kernel: release(),
      node: process.version,
      docker: version.Version ?? "unknown",
      loadAverage: { atStart: loadAtStart, atEnd: round(loadavg()[0] ?? 0, 1) },
    },
    samples: SAMPLES,
    latencyMs: {
      nodeE: user.nodeE,
      dockerRun: docker1,
      labrunColdHttp: coldHttp,
      labrunWarmHttp: user.labrunWarmHttp,
      labrunWarmCli: user.labrunWarmCli,
      cliVersion: user.cliVersion,
      cliStatus: user.cliStatus,
      cliJobs: user.cliJobs,
    },
    warmJobBreakdown: breakdown,
    throughput: { labrunWarm: burst, dockerChurn: churn },
    memoryMb: {
      agentIdle: agentIdleRssMb,
      agentWithFullPool: agentWarmRssMb,
      warmContainers: pool,
    },
    coordinator,
    batchCapacity,
    usersCapacity,
    mapThroughput,
    python,
    programs,
    postgresDriver,
    bookkeeping,
    storeLatency,
    leasePrograms,
    comparison,
    elapsedSeconds: Math.round((Date.now() - began) / 1000),
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const markdown = biomeFormatted(
    renderMarkdown(results) +
      (python ? renderPython(python) : "") +
      (programs ? renderPrograms(programs) : "") +
      (postgresDriver ? renderPostgresDriver(postgresDriver) : "") +
      [
        ...(bookkeeping ? ["", ...renderBookkeeping(bookkeeping)] : []),
        ...(storeLatency ? ["", ...renderStoreLatency(storeLatency)] : []),
        ...(leasePrograms ? ["", ...renderLeaseByProgramSize(leasePrograms)] : []),
        ...(comparison ? ["", ...renderComparison(comparison)] : []),
        "",
      ].join("\n"),
  );
  writeFileSync(join(RESULTS_DIR, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(RESULTS_DIR, "latest.md"), markdown);
  process.stdout.write(markdown);
  step(`wrote ${join(RESULTS_DIR, "latest.json")} and latest.md (${results.elapsedSeconds} s)`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});

/**
 * The tables as Biome formats markdown (columns padded), so that pasting
 * latest.md into the README keeps `npm run lint` green: bench/results itself
 * is outside Biome's files, the README is not.
 */
function biomeFormatted(markdown: string): string {
  const biome = fileURLToPath(new URL("../../node_modules/.bin/biome", import.meta.url));
  return execFileSync(biome, ["format", "--stdin-file-path=bench-table.md"], {
    input: markdown,
    encoding: "utf8",
  });
}
