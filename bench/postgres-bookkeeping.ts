/**
 * Batch bookkeeping on PostgreSQL with one and with two coordinators, beside
 * SQLite, in one run (issue 18: ≥ 5,000 items/s with 2 coordinators on this
 * machine's 2 cores). The steady phase of bench/batch-capacity.ts: NDJSON
 * batches of 2,000 items kept coming while simulated batch agents
 * (bench/coordinator/batch-agent.ts: one lease for all free slots, results in
 * groups) lease and report over loopback HTTP; an item "runs" by finishing at
 * once. With two coordinators on one database, half the agents talk to each
 * and the submits alternate between them.
 *
 * Each PostgreSQL configuration gets a database of its own, created empty
 * and dropped after (`track_wal_io_timing` on for it, so the row can say
 * what the WAL's fsyncs cost). `synchronous_commit` stays on, as the store
 * runs: a result answered 200 is on disk.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { NDJSON } from "../protocol/index.js";
import { BatchFleet, type BatchFleetCounters } from "./coordinator/batch-agent.js";
import { machineBusySeconds, processCpuSeconds } from "./coordinator/cpu.js";
import { LoopbackJson, sleep } from "./coordinator/http.js";
import {
  type ChildServer,
  type CoordinatorStarted,
  launchCoordinator,
} from "./coordinator/launch.js";
import { freshDatabase, PgWatch, type PgWindow } from "./coordinator/pg-stats.js";
import type { Target } from "./coordinator-capacity.js";
import { round } from "./stats.js";

export interface BookkeepingOptions {
  /** Simulated agents in all (default 4), spread over the coordinators. */
  agents?: number;
  /** Slots per agent (default 256). */
  slots?: number;
  /** Measured window of each configuration (default 8 s). */
  durationMs?: number;
  /** Which configurations to run (default all three). */
  configurations?: readonly BookkeepingConfiguration[];
  /**
   * Session settings of the bench's databases. Only for measuring what a
   * setting costs, such as `synchronous_commit: "off"` (what waiting for
   * the WAL fsync at each commit costs); the store never runs with it.
   */
  databaseSettings?: Record<string, string>;
}

export interface BookkeepingConfiguration {
  store: "sqlite" | "postgres";
  coordinators: number;
  /** Another build's dist/ whose coordinator runs instead (bench/compare-builds.ts). */
  dist?: string;
}

export interface BookkeepingRow extends BookkeepingConfiguration {
  items: number;
  seconds: number;
  /** Results the coordinators took per second: the headline. */
  itemsPerSecond: number;
  itemsPerLease: number;
  itemsPerGroup: number;
  /** Mean wall ms of a lease that brought work, and of a result group, as the agents saw them. */
  leaseMs: number;
  groupMs: number;
  /** Mean wall ms of one 2,000-item NDJSON submit. */
  submitMs: number;
  /** CPU cores: the coordinators together, the bench's agents and submitter, the whole machine. */
  coordinatorCores: number;
  benchCores: number;
  machineCores: number;
  /**
   * Items per CPU second of the coordinators and the database server
   * together: what the bookkeeping costs, whatever share of the machine it
   * got. Two free cores would give about twice this (less the agents').
   */
  itemsPerCpuSecond: number;
  /** The database's side (PostgreSQL only). */
  postgres?: PgWindow;
  errors: number;
}

export interface BookkeepingResult {
  setup: { agents: number; slots: number; cpus: number; loadAverage1m: number; batchItems: number };
  rows: BookkeepingRow[];
  targets: {
    /** ≥ 5,000 items/s with 2 coordinators on PostgreSQL. */
    twoCoordinatorsItemsPerSecond: Target | null;
  };
  elapsedSeconds: number;
}

const BATCH_ITEMS = 2_000;
/** Items kept queued ahead of the agents. */
const DEPTH = 10_000;
const WARMUP_MS = 1_500;
const ALL: readonly BookkeepingConfiguration[] = [
  { store: "sqlite", coordinators: 1 },
  { store: "postgres", coordinators: 1 },
  { store: "postgres", coordinators: 2 },
];

/**
 * Runs each configuration on fresh coordinators (and a fresh database),
 * one after the other. `serverUrl` is any database URL of the PostgreSQL
 * server to use (the bench creates and drops its own databases there).
 *
 * @example
 * const result = await benchBookkeeping(ensureDevPostgres(), { durationMs: 8_000 });
 */
export async function benchBookkeeping(
  serverUrl: string,
  options: BookkeepingOptions = {},
): Promise<BookkeepingResult> {
  const began = performance.now();
  const agents = options.agents ?? 4;
  const slots = options.slots ?? 256;
  const durationMs = options.durationMs ?? 8_000;
  const loadAverage1m = round(loadavg()[0] ?? 0, 1);
  const rows: BookkeepingRow[] = [];
  for (const configuration of options.configurations ?? ALL) {
    rows.push(
      await runConfiguration(
        serverUrl,
        configuration,
        { agents, slots, durationMs },
        options.databaseSettings,
      ),
    );
  }
  const two = rows.find((row) => row.store === "postgres" && row.coordinators === 2);
  return {
    setup: { agents, slots, cpus: cpus().length, loadAverage1m, batchItems: BATCH_ITEMS },
    rows,
    targets: {
      twoCoordinatorsItemsPerSecond: two
        ? { target: 5_000, measured: two.itemsPerSecond, met: two.itemsPerSecond >= 5_000 }
        : null,
    },
    elapsedSeconds: round((performance.now() - began) / 1000, 1),
  };
}

/**
 * One configuration's steady window (exported for the side-by-side rows
 * against an older build, bench/compare-builds.ts).
 */
export async function runConfiguration(
  serverUrl: string,
  configuration: BookkeepingConfiguration,
  settings: { agents: number; slots: number; durationMs: number },
  databaseSettings: Record<string, string> = {},
): Promise<BookkeepingRow> {
  const database =
    configuration.store === "postgres"
      ? await freshDatabase(
          serverUrl,
          `labrun_bench_bookkeeping_${configuration.coordinators}`,
          databaseSettings,
        )
      : undefined;
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-bench-bookkeeping-"));
  const coordinators: ChildServer<CoordinatorStarted>[] = [];
  const clients: LoopbackJson[] = [];
  const watch = database
    ? new PgWatch(database.url, new URL(database.url).pathname.slice(1))
    : undefined;
  try {
    // One after the other: the first runs the migrations and writes
    // tokens.json, the second finds both.
    for (let index = 0; index < configuration.coordinators; index++) {
      const coordinator = await launchCoordinator({
        dataDir,
        ...(database ? { store: database.url } : {}),
        ...(configuration.dist ? { dist: configuration.dist } : {}),
      });
      coordinators.push(coordinator);
      clients.push(new LoopbackJson(coordinator.started.url));
    }
    const tokens = coordinators[0]?.started.tokens;
    if (!tokens) throw new Error("no coordinator started");
    const fleet = await BatchFleet.register(clients, tokens.agent, settings);
    const body = ndjsonBatch(BATCH_ITEMS);
    let submitted = 0;
    let submits = 0;
    let submitMs = 0;
    let submitErrors = 0;
    let stopping = false;
    // One feeder per coordinator, sharing one depth: a submit on either queues work for all.
    const feeders = clients.map(async (client) => {
      while (!stopping) {
        if (submitted - fleet.counters.results >= DEPTH) {
          await sleep(2);
          continue;
        }
        submitted += BATCH_ITEMS; // counted before the answer, so feeders do not overshoot together
        const sent = performance.now();
        const answer = await client
          .post("/batches", tokens.client, body, undefined, NDJSON)
          .catch(() => ({ status: 0 }));
        if (answer.status === 201) {
          submits++;
          submitMs += performance.now() - sent;
        } else {
          submitted -= BATCH_ITEMS;
          submitErrors++;
          await sleep(50);
        }
      }
    });
    fleet.start();
    try {
      await sleep(WARMUP_MS);
      const before: BatchFleetCounters = { ...fleet.counters };
      const submitsBefore = { submits, submitMs };
      const endPg = await watch?.start();
      const pids = coordinators.map((coordinator) => coordinator.started.pid);
      const cpuBefore = pids.map((pid) => processCpuSeconds(pid));
      const benchBefore = process.cpuUsage();
      const machineBefore = machineBusySeconds();
      const started = performance.now();
      await sleep(settings.durationMs);
      const seconds = (performance.now() - started) / 1000;
      const after: BatchFleetCounters = { ...fleet.counters };
      const coordinatorCpu = pids.reduce(
        (sum, pid, index) => sum + processCpuSeconds(pid) - (cpuBefore[index] ?? 0),
        0,
      );
      const benchUsage = process.cpuUsage(benchBefore);
      const machineCpu = machineBusySeconds() - machineBefore;
      const items = after.results - before.results;
      const pg = endPg ? await endPg(items) : undefined;
      const leases = after.leaseCalls - before.leaseCalls;
      const groups = after.groupRequests - before.groupRequests;
      const windowSubmits = submits - submitsBefore.submits;
      return {
        ...configuration,
        items,
        seconds: round(seconds, 2),
        itemsPerSecond: Math.round(items / seconds),
        itemsPerLease: round((after.leasedItems - before.leasedItems) / Math.max(1, leases)),
        itemsPerGroup: round(items / Math.max(1, groups)),
        leaseMs: round((after.leaseMs - before.leaseMs) / Math.max(1, leases), 1),
        groupMs: round((after.groupMs - before.groupMs) / Math.max(1, groups), 1),
        submitMs: round((submitMs - submitsBefore.submitMs) / Math.max(1, windowSubmits), 1),
        coordinatorCores: round(coordinatorCpu / seconds, 2),
        benchCores: round((benchUsage.user + benchUsage.system) / 1e6 / seconds, 2),
        machineCores: round(machineCpu / seconds, 2),
        itemsPerCpuSecond: Math.round(
          items /
            Math.max(
              0.01,
              coordinatorCpu + ((pg?.backendCores ?? 0) + (pg?.serverCores ?? 0)) * seconds,
            ),
        ),
        ...(pg ? { postgres: pg } : {}),
        errors: after.errors - before.errors + submitErrors,
      };
    } finally {
      stopping = true;
      await Promise.all(feeders);
      await fleet.stop();
    }
  } finally {
    for (const client of clients) client.close();
    await Promise.all(coordinators.map((coordinator) => coordinator.stop()));
    await watch?.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** An NDJSON batch body: the spec, then one small input per line. */
function ndjsonBatch(items: number): string {
  const lines = [JSON.stringify({ source: "exports.main = (input) => input.seed" })];
  for (let index = 0; index < items; index++) lines.push(`{"seed":${index}}`);
  return `${lines.join("\n")}\n`;
}
