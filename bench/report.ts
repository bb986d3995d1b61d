import type { BatchCapacityResult } from "./batch-capacity.js";
import type { ComparedRow, CompareResult } from "./compare-builds.js";
import type { PgWindow } from "./coordinator/pg-stats.js";
import type { CoordinatorCapacityResult } from "./coordinator-capacity.js";
import { HOP_DESCRIPTIONS, type WarmJobBreakdown } from "./e2e/breakdown.js";
import type { MapThroughput } from "./e2e/map-throughput.js";
import type { StoreLatency } from "./e2e/store-latency.js";
import type { Throughput } from "./e2e/throughput.js";
import type { BookkeepingResult, BookkeepingRow } from "./postgres-bookkeeping.js";
import { type Distribution, round } from "./stats.js";
import type { UsersCapacityResult } from "./users-capacity.js";

/** Everything one `npm run bench` measured (bench/results/latest.json). */
export interface BenchResults {
  date: string;
  machine: {
    cpu: string;
    cores: number;
    memoryGb: number;
    kernel: string;
    node: string;
    docker: string;
    /** The machine's 1-minute load average as the run began and ended (noise from other work). */
    loadAverage: { atStart: number; atEnd: number };
  };
  samples: number;
  latencyMs: {
    nodeE: Distribution;
    dockerRun: Distribution;
    labrunColdHttp: Distribution;
    labrunWarmHttp: Distribution;
    labrunWarmCli: Distribution;
    cliVersion: Distribution;
    cliStatus: Distribution;
    cliJobs: Distribution;
  };
  warmJobBreakdown: WarmJobBreakdown;
  throughput: { labrunWarm: Throughput; dockerChurn: Throughput };
  memoryMb: {
    agentIdle: number;
    agentWithFullPool: number;
    warmContainers: { containers: number; totalMb: number };
  };
  coordinator: CoordinatorCapacityResult | null;
  /** Batch bookkeeping (bench/batch-capacity.ts); absent in runs from before it. */
  batchCapacity?: BatchCapacityResult | null;
  /** Fair share's bookkeeping (bench/users-capacity.ts); absent in runs from before users. */
  usersCapacity?: UsersCapacityResult | null;
  /** `labrun map` on one agent against docker churn (bench/e2e/map-throughput.ts). */
  mapThroughput?: MapThroughput | null;
  elapsedSeconds: number;
}

interface TargetRow {
  what: string;
  target: string;
  measured: string;
  met: boolean;
}

/** The targets of issues 6 and 13, each judged on this run's own numbers. */
export function targets(r: BenchResults): TargetRow[] {
  const l = r.latencyMs;
  const ratio = (a: number, b: number) => round(a / b, 3);
  const vsNode = (what: string, d: Distribution, most: number): TargetRow => ({
    what: `${what} p50 ÷ \`node -e 1\` p50`,
    target: `≤ ${most}`,
    measured: String(ratio(d.p50, l.nodeE.p50)),
    met: d.p50 / l.nodeE.p50 <= most,
  });
  const rows: TargetRow[] = [
    vsNode("warm e2e (HTTP)", l.labrunWarmHttp, 0.15),
    vsNode("`labrun submit` (whole CLI, warm)", l.labrunWarmCli, 2.0),
    vsNode("`labrun --version`", l.cliVersion, 1.6),
    vsNode("`labrun status ID`", l.cliStatus, 1.6),
    vsNode("`labrun jobs`", l.cliJobs, 1.6),
    {
      what: "warm e2e p50 (HTTP) ÷ `docker run` p50",
      target: "≤ 0.06",
      measured: String(ratio(l.labrunWarmHttp.p50, l.dockerRun.p50)),
      met: l.labrunWarmHttp.p50 / l.dockerRun.p50 <= 0.06,
    },
    {
      what: "cold e2e p50 (HTTP) ÷ `docker run` p50",
      target: "≤ 1.1",
      measured: String(ratio(l.labrunColdHttp.p50, l.dockerRun.p50)),
      met: l.labrunColdHttp.p50 / l.dockerRun.p50 <= 1.1,
    },
    {
      what: "burst jobs/s ÷ `docker run` churn jobs/s",
      target: "≥ 1.0",
      measured: String(
        ratio(r.throughput.labrunWarm.jobsPerSecond, r.throughput.dockerChurn.jobsPerSecond),
      ),
      met: r.throughput.labrunWarm.jobsPerSecond >= r.throughput.dockerChurn.jobsPerSecond,
    },
    {
      what: "idle agent RSS",
      target: "≤ 80 MB",
      measured: `${r.memoryMb.agentIdle} MB`,
      met: r.memoryMb.agentIdle <= 80,
    },
  ];
  const c = r.coordinator;
  if (c) {
    rows.push(
      {
        what: "coordinator bookkeeping (1k queued)",
        target: "≥ 5,000 jobs/s",
        measured: `${c.throughputQueued1k.jobsPerSecond} jobs/s`,
        met: c.targets.jobsPerSecond.met,
      },
      {
        what: "p99 queue latency at half load",
        target: "≤ 10 ms",
        measured: `${c.latencyAtHalfLoad.queueMs.p99} ms`,
        met: c.targets.p99QueueMs.met,
      },
      {
        what: "coordinator RSS with 100k queued",
        target: "≤ 200 MB",
        measured: `${c.memory.bigQueueQueued.rssMb} MB`,
        met: c.targets.rssMbBigQueue.met,
      },
    );
  }
  const b = r.batchCapacity;
  if (b) {
    rows.push(
      {
        what: "coordinator bookkeeping, batches (submit + lease + result groups)",
        target: "≥ 10,000 items/s",
        measured: `${b.steady.itemsPerSecond} items/s`,
        met: b.targets.itemsPerSecond.met,
      },
      {
        what: `coordinator RSS with a ${b.submitBig.items.toLocaleString("en")}-item batch queued`,
        target: "≤ 250 MB",
        measured: `${b.memory.bigBatchQueued.rssMb} MB`,
        met: b.targets.rssMbBigBatch.met,
      },
    );
  }
  const u = r.usersCapacity;
  if (u) rows.push(...usersTargets(u));
  const map = r.mapThroughput;
  if (map) {
    rows.push({
      what: "`labrun map` items/s ÷ `docker run` churn runs/s",
      target: "≥ 50",
      measured: String(map.ratio),
      met: map.ratio >= 50,
    });
  }
  return rows;
}

/** The `labrun map` table's lines (also printed by map-throughput.main.js). */
export function renderMapThroughput(m: MapThroughput): string[] {
  return [
    `| ${m.labrunMap.items.toLocaleString("en")} trivial items, parallelism ${m.labrunMap.slots} | seconds | items/s | ÷ \`docker run\` |`,
    "|---|---:|---:|---:|",
    `| \`labrun map\` (one agent, ${m.labrunMap.slots} slots, warm pool; a batch's items share its containers) | ${m.labrunMap.seconds} | ${m.labrunMap.itemsPerSecond} | ${m.ratio} |`,
    `| \`docker run --rm\` × ${m.dockerChurn.jobs} | ${m.dockerChurn.seconds} | ${m.dockerChurn.jobsPerSecond} | 1 |`,
  ];
}

/** The batch bookkeeping table's lines (also printed by batch-capacity.main.js). */
export function renderBatchCapacity(b: BatchCapacityResult): string[] {
  const items = (n: number) => n.toLocaleString("en");
  return [
    `| Coordinator with batches (${b.setup.agents} simulated agents × ${b.setup.slots} slots, NDJSON submits, results in groups, loopback HTTP) | value |`,
    "|---|---:|",
    `| items/s, submit + lease + result (batches of ${items(b.steady.batchItems)}) | ${b.steady.itemsPerSecond} |`,
    `| items/s, lease + result, draining a ${items(b.submitBig.items)}-item batch | ${b.drainBig.itemsPerSecond} |`,
    `| items per lease / per result group | ${b.steady.itemsPerLease} / ${b.steady.itemsPerGroup} |`,
    `| coordinator CPU during the steady window (cores; the machine's others took ${b.steady.cpu.otherCores}) | ${b.steady.cpu.coordinatorCores} |`,
    `| items per coordinator CPU second, steady / draining | ${b.steady.itemsPerCoordinatorCpuSecond} / ${b.drainBig.itemsPerCoordinatorCpuSecond} |`,
    `| accepting a ${items(b.submitBig.items)}-item NDJSON submit (${b.submitBig.bodyMb} MB) | ${b.submitBig.seconds} s |`,
    `| RSS idle / with the ${items(b.submitBig.items)}-item batch queued | ${b.memory.idle.rssMb} / ${b.memory.bigBatchQueued.rssMb} MB |`,
    ...(b.summaryBig
      ? [
          `| batch page summary of the drained ${items(b.summaryBig.items)}-item batch: first read / next reads (median of 5) | ${b.summaryBig.firstMs} / ${b.summaryBig.nextMs} ms |`,
          `| slowest \`/healthz\` during that first read (${b.summaryBig.healthzProbes} asked, one every 5 ms) | ${b.summaryBig.longestHealthzMs} ms |`,
        ]
      : []),
  ];
}

/** The readable table (bench/results/latest.md, quoted by the README). */
export function renderMarkdown(r: BenchResults): string {
  const l = r.latencyMs;
  const lines: string[] = [];
  const m = r.machine;
  lines.push(
    `Measured ${r.date.slice(0, 10)} on ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Linux ${m.kernel}, Node ${m.node}, Docker ${m.docker}; ${r.samples} sequential jobs per latency row; load average ${m.loadAverage.atStart} at the start, ${m.loadAverage.atEnd} at the end.`,
    "",
    "| Trivial job (`exports.main = () => 1`) | p50 ms | p95 ms | ÷ `node -e 1` | ÷ `docker run` |",
    "|---|---:|---:|---:|---:|",
  );
  const row = (name: string, d: Distribution) =>
    lines.push(
      `| ${name} | ${d.p50} | ${d.p95} | ${round(d.p50 / l.nodeE.p50, 3)} | ${round(d.p50 / l.dockerRun.p50, 3)} |`,
    );
  row("bare `node -e 1`", l.nodeE);
  row("`docker run --rm -i` (same image and sandbox flags)", l.dockerRun);
  row("labrun cold (pool off), HTTP client submit → result", l.labrunColdHttp);
  row("labrun warm, HTTP client submit → result", l.labrunWarmHttp);
  row("labrun warm, `labrun submit` CLI → result", l.labrunWarmCli);
  row("`labrun --version`", l.cliVersion);
  row("`labrun status ID`", l.cliStatus);
  row("`labrun jobs`", l.cliJobs);

  const b = r.warmJobBreakdown;
  lines.push(
    "",
    `| Warm job over HTTP, hop by hop (p50 of ${b.jobs} traced jobs; the hops' p50s need not add up to the total's) | ms |`,
    "|---|---:|",
    ...Object.entries(b.hopsMs).map(
      ([hop, ms]) => `| ${HOP_DESCRIPTIONS[hop as keyof typeof HOP_DESCRIPTIONS]} | ${ms} |`,
    ),
    `| **total** (submit → result read) | **${b.totalMs}** |`,
    `| of the container hop, Docker's attach in + out alone (a node that only echoes the line) | ${b.attachEchoMs} |`,
  );

  const t = r.throughput;
  lines.push(
    "",
    `| Burst of ${t.labrunWarm.jobs} trivial jobs, parallelism ${t.labrunWarm.parallelism} | seconds | jobs/s |`,
    "|---|---:|---:|",
    `| labrun (one agent, ${t.labrunWarm.parallelism} slots, warm pool) | ${t.labrunWarm.seconds} | ${t.labrunWarm.jobsPerSecond} |`,
    `| \`docker run --rm\` × ${t.dockerChurn.jobs} | ${t.dockerChurn.seconds} | ${t.dockerChurn.jobsPerSecond} |`,
  );

  const c = r.coordinator;
  if (c) {
    lines.push(
      "",
      `| Coordinator alone (${c.setup.agents} simulated agents × ${c.setup.slots} slots, loopback HTTP) | value |`,
      "|---|---:|",
      `| jobs/s, 1k queued (submit → lease → result) | ${c.throughputQueued1k.jobsPerSecond} |`,
      `| jobs/s, ${c.throughputQueuedBig.queuedAtStart.toLocaleString("en")} queued | ${c.throughputQueuedBig.jobsPerSecond} |`,
      `| queue latency at ${c.latencyAtHalfLoad.achievedPerSecond} jobs/s: p50 / p99 ms | ${c.latencyAtHalfLoad.queueMs.p50} / ${c.latencyAtHalfLoad.queueMs.p99} |`,
      `| enqueue rate (${c.enqueueBigQueue.accepted.toLocaleString("en")} jobs) | ${c.enqueueBigQueue.perSecond}/s |`,
      `| bare node:http ceiling, same client | ${c.httpCeiling.requestsPerSecond} req/s |`,
      `| RSS idle / with ${c.memory.bigQueueQueued.queued.toLocaleString("en")} queued | ${c.memory.idle.rssMb} / ${c.memory.bigQueueQueued.rssMb} MB |`,
    );
  }

  if (r.batchCapacity) lines.push("", ...renderBatchCapacity(r.batchCapacity));
  if (r.mapThroughput) lines.push("", ...renderMapThroughput(r.mapThroughput));

  const mem = r.memoryMb;
  lines.push(
    "",
    "| Agent memory | MB |",
    "|---|---:|",
    `| agent RSS idle (pool off) | ${mem.agentIdle} |`,
    `| agent RSS with a full warm pool | ${mem.agentWithFullPool} |`,
    `| the pool's ${mem.warmContainers.containers} idle containers (cgroup usage, total) | ${mem.warmContainers.totalMb} |`,
    "",
    "| Target | wanted | measured | met |",
    "|---|---|---|---|",
    ...targets(r).map(
      (x) => `| ${x.what} | ${x.target} | ${x.measured} | ${x.met ? "yes" : "**no**"} |`,
    ),
    "",
  );
  return lines.join("\n");
}

/** The fair-share rows (also printed by users-capacity.main.js's caller). */
export function usersTargets(u: UsersCapacityResult): TargetRow[] {
  const { users, queuedPerUser } = u.setup;
  return [
    {
      what: `store bookkeeping, ${users} users × ${queuedPerUser.toLocaleString("en")} queued ÷ one user (CPU per job; jobs/s ${u.multiUser.jobsPerSecond} vs ${u.singleUser.jobsPerSecond})`,
      target: "≥ 0.8",
      measured: String(u.targets.ratio.measured),
      met: u.targets.ratio.met,
    },
    {
      what: `p99 lease latency, ${users} users × ${queuedPerUser.toLocaleString("en")} queued (CPU p99 ${u.multiUser.leaseCpuMs.p99} ms; load ${u.setup.loadAverage1m})`,
      target: "≤ 10 ms",
      measured: `${u.multiUser.leaseMs.p99} ms`,
      met: u.targets.p99LeaseMs.met,
    },
  ];
}

/** The bookkeeping rows on SQLite and on PostgreSQL with 1 and 2 coordinators (bench/postgres-bookkeeping.ts). */
export function renderBookkeeping(b: BookkeepingResult): string[] {
  const name = (row: BookkeepingRow) =>
    `${row.store === "sqlite" ? "SQLite" : "PostgreSQL"}, ${row.coordinators} coordinator${row.coordinators > 1 ? "s" : ""}`;
  const pg = (row: BookkeepingRow, value: (p: PgWindow) => string | number) =>
    row.postgres ? String(value(row.postgres)) : "–";
  const lines = [
    `| Batch bookkeeping by store (${b.setup.agents} simulated agents × ${b.setup.slots} slots over loopback HTTP, NDJSON batches of ${b.setup.batchItems.toLocaleString("en")}, results in groups; load average ${b.setup.loadAverage1m}) | items/s | items per CPU s (coordinators + PostgreSQL) | lease / group / submit ms | CPU cores: coordinators / PostgreSQL backends / machine | commits, rows written, WAL bytes per item | WAL fsyncs/s (ms in fsync per s) |`,
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  for (const row of b.rows) {
    lines.push(
      `| ${name(row)} | ${row.itemsPerSecond.toLocaleString("en")} | ${row.itemsPerCpuSecond.toLocaleString("en")} | ${row.leaseMs} / ${row.groupMs} / ${row.submitMs} | ${row.coordinatorCores} / ${pg(row, (p) => p.backendCores)} / ${row.machineCores} | ${pg(row, (p) => `${p.commitsPerItem}, ${p.rowsWrittenPerItem}, ${p.walBytesPerItem}`)} | ${pg(row, (p) => `${p.walSyncsPerSecond} (${p.walSyncMsPerSecond})`)} |`,
    );
  }
  const target = b.targets.twoCoordinatorsItemsPerSecond;
  if (target) {
    lines.push(
      "",
      `Target (issue 18): ≥ ${target.target.toLocaleString("en")} items/s with 2 coordinators on PostgreSQL: ${target.measured.toLocaleString("en")}, ${target.met ? "met" : "**not met**"}.`,
    );
  }
  return lines;
}

/** The side-by-side rows against another build (bench/compare-builds.ts). */
export function renderComparison(c: CompareResult): string[] {
  const row = (name: string, r: ComparedRow | null) =>
    r
      ? [
          `| ${name} | ${r.thisMedian.toLocaleString("en")} ${r.unit} (${r.thisBuild.join(", ")}) | ${r.otherMedian.toLocaleString("en")} ${r.unit} (${r.otherBuild.join(", ")}) | ${r.ratio} |`,
        ]
      : [];
  return [
    `| This build against \`${c.otherDist}\`, SQLite, interleaved (load average ${c.loadAverage.atStart} → ${c.loadAverage.atEnd}) | this build: median (rounds) | other build: median (rounds) | this ÷ other |`,
    "|---|---:|---:|---:|",
    ...row(
      "coordinator capacity, 1,000 queued (50 simulated agents × 4 slots)",
      c.coordinatorJobsPerSecond,
    ),
    ...row(
      "batch bookkeeping, submit + lease + result (4 agents × 256 slots)",
      c.batchItemsPerSecond,
    ),
    ...row("warm single job over HTTP, p50 (real Docker)", c.warmHttpP50Ms),
  ];
}

/** PostgreSQL's warm single job against SQLite's in the same run (bench/e2e/store-latency.ts). */
export function renderStoreLatency(s: StoreLatency): string[] {
  return [
    "| Warm single job over HTTP by store (real Docker, interleaved) | p50 ms | p95 ms |",
    "|---|---:|---:|",
    `| SQLite | ${s.sqlite.p50} | ${s.sqlite.p95} |`,
    `| PostgreSQL | ${s.postgres.p50} | ${s.postgres.p95} |`,
    "",
    `Target (issue 18): PostgreSQL's p50 within 2× SQLite's: ${s.p50Ratio}×, ${s.target.met ? "met" : "**not met**"}.`,
  ];
}
