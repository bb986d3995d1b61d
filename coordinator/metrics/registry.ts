import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import {
  type ClusterStats,
  type HeartbeatStats,
  JOB_STATES,
  NodeState,
  OUTCOME_ERROR_CODES,
  type Outcome,
  type OutcomeErrorCode,
} from "../../protocol/index.js";
import type { Notifier } from "../notifier.js";
import type { Store } from "../store/index.js";

/** The `code` label of a job that succeeded (failures carry their outcome code). */
export const SUCCEEDED_CODE = "OK";

/** The `route` label of a request that matched no route (never the raw path). */
export const UNMATCHED_ROUTE = "(unmatched)";

/** Long-polls wait up to 60 s, so the top buckets reach that far. */
const HTTP_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Job time limits go up to an hour. */
const JOB_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const CONTAINER_START_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

export interface MetricsOptions {
  store: Store;
  /** Long-poll waiters are reported when given. */
  notifier?: Notifier;
  /** Time for the store's "lost" rule (epoch ms). Default Date.now. */
  clock?: () => number;
  /**
   * Also export Node's process metrics (`process_*`, `nodejs_*`); main.ts
   * turns this on. Tests leave it off: they need no process-wide observers.
   */
  processMetrics?: boolean;
  /**
   * Whether this coordinator is the maintenance leader now (cluster/leader.ts):
   * exported as `labrun_maintenance_leader` when given.
   */
  isLeader?: () => boolean;
}

/** The coordinator's Prometheus metrics: what routes and the sweeper record, and the scrape. */
let processRegistry: Registry | undefined;

/**
 * Node's process metrics, collected once per process: their observers (GC,
 * event-loop delay) cannot be stopped, and `labrun up` or a test suite may
 * start several coordinators in one process. Each scrape merges them in.
 */
function sharedProcessRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface CoordinatorMetrics {
  readonly registry: Registry;
  /** An agent's result was recorded: counted by code, its run time observed. */
  resultRecorded(outcome: Outcome): void;
  /** Jobs the coordinator itself ended (CANCELLED, NODE_LOST). */
  jobsFinished(code: OutcomeErrorCode, count?: number): void;
  /** The sweeper's expired leases: queued again, or failed past maxAttempts. */
  leasesExpired(requeued: number, failed: number): void;
  /** What an agent measured since its previous heartbeat. */
  agentReported(stats: HeartbeatStats): void;
  /** One answered HTTP request; `route` is the matched pattern, never the raw path. */
  requestAnswered(method: string, route: string, status: number, seconds: number): void;
  /** The exposition text; gauges read the store once per scrape. */
  scrape(): Promise<string>;
  /** The exposition's Content-Type. */
  readonly contentType: string;
}

/**
 * One registry per call (never prom-client's global one: tests build many
 * apps, and each must count only its own). Queue and node gauges are read
 * from the store when scraped; counters and histograms are fed by the routes
 * and the sweeper where the events happen.
 *
 * @example
 * const metrics = createMetrics({ store, notifier });
 * metrics.jobsFinished("CANCELLED");
 * const text = await metrics.scrape();
 */
export function createMetrics(options: MetricsOptions): CoordinatorMetrics {
  const { store, notifier, clock = Date.now } = options;
  const registry = new Registry();
  const registers = [registry];

  // Every gauge is read from one store snapshot per scrape (scrape() clears it).
  let snapshot: Promise<ClusterStats> | undefined;
  const current = () => {
    snapshot ??= store.stats(clock());
    return snapshot;
  };

  new Gauge({
    name: "labrun_jobs",
    help: "Jobs by state (queued is the queue depth), read from the store when scraped.",
    labelNames: ["state"] as const,
    registers,
    async collect() {
      const { jobs } = await current();
      for (const state of JOB_STATES) this.set({ state }, jobs[state]);
    },
  });
  new Gauge({
    name: "labrun_nodes",
    help: "Registered nodes by state (lost: silent for longer than the lease TTL).",
    labelNames: ["state"] as const,
    registers,
    async collect() {
      const { nodes } = await current();
      for (const state of NodeState.options) this.set({ state }, nodes[state]);
    },
  });
  new Gauge({
    name: "labrun_batch_items",
    help: "Items of batches by state (each is also a job in labrun_jobs), read from the store when scraped.",
    labelNames: ["state"] as const,
    registers,
    async collect() {
      const items = (await current()).batchItems;
      for (const state of JOB_STATES) this.set({ state }, items?.[state] ?? 0);
    },
  });
  new Gauge({
    name: "labrun_batches",
    help: "Batches by state (active: some item not finished yet), read from the store when scraped.",
    labelNames: ["state"] as const,
    registers,
    async collect() {
      const batches = (await current()).batches;
      for (const state of ["active", "succeeded", "failed", "cancelled"] as const) {
        this.set({ state }, batches?.[state] ?? 0);
      }
    },
  });
  if (notifier) {
    new Gauge({
      name: "labrun_long_polls_waiting",
      help: "Requests waiting in a long-poll: agents for work (lease), clients for a job (job).",
      labelNames: ["kind"] as const,
      registers,
      collect() {
        const { lease, jobs } = notifier.waiting;
        this.set({ kind: "lease" }, lease);
        this.set({ kind: "job" }, jobs);
      },
    });
  }

  const { isLeader } = options;
  if (isLeader) {
    new Gauge({
      name: "labrun_maintenance_leader",
      help: "1 while this coordinator is the maintenance leader (it alone expires leases and prunes finished jobs), else 0.",
      registers,
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
  }

  const finished = new Counter({
    name: "labrun_jobs_finished_total",
    help: `Jobs that reached a terminal state, by outcome code (${SUCCEEDED_CODE} when they succeeded).`,
    labelNames: ["code"] as const,
    registers,
  });
  const duration = new Histogram({
    name: "labrun_job_duration_seconds",
    help: "Run time of jobs as their agent measured it (outcome stats.durationMs), by final state.",
    labelNames: ["state"] as const,
    buckets: JOB_BUCKETS,
    registers,
  });
  const expiries = new Counter({
    name: "labrun_lease_expiries_total",
    help: "Leases that ran out without a heartbeat: the job queued again, or failed with NODE_LOST.",
    labelNames: ["action"] as const,
    registers,
  });
  const containerStart = new Histogram({
    name: "labrun_agent_container_start_seconds",
    help: "How long agents took to boot a job container (warm pool and cold), as they report it.",
    buckets: CONTAINER_START_BUCKETS,
    registers,
  });
  const runs = new Counter({
    name: "labrun_agent_job_runs_total",
    help: "Jobs agents started on a warm-pool container (warm) or one booted for them (cold).",
    labelNames: ["container"] as const,
    registers,
  });
  const requests = new Histogram({
    name: "labrun_http_request_duration_seconds",
    help: "Time to answer HTTP requests (long-polls included), by method, route pattern and status.",
    labelNames: ["method", "route", "status"] as const,
    buckets: HTTP_BUCKETS,
    registers,
  });

  // Every known series exists from the start, so rate() sees the first event.
  for (const code of [SUCCEEDED_CODE, ...OUTCOME_ERROR_CODES]) finished.inc({ code }, 0);
  for (const action of ["requeued", "failed"]) expiries.inc({ action }, 0);
  for (const container of ["warm", "cold"]) runs.inc({ container }, 0);

  const exposed = options.processMetrics
    ? Registry.merge([registry, sharedProcessRegistry()])
    : registry;

  return {
    registry,
    resultRecorded(outcome) {
      finished.inc({ code: outcome.ok ? SUCCEEDED_CODE : outcome.error.code });
      duration.observe(
        { state: outcome.ok ? "succeeded" : "failed" },
        outcome.stats.durationMs / 1000,
      );
    },
    jobsFinished(code, count = 1) {
      if (count > 0) finished.inc({ code }, count);
    },
    leasesExpired(requeued, failed) {
      if (requeued > 0) expiries.inc({ action: "requeued" }, requeued);
      if (failed > 0) expiries.inc({ action: "failed" }, failed);
    },
    agentReported({ containerStartMs = [], warmRuns = 0, coldRuns = 0 }) {
      for (const ms of containerStartMs) containerStart.observe(ms / 1000);
      if (warmRuns > 0) runs.inc({ container: "warm" }, warmRuns);
      if (coldRuns > 0) runs.inc({ container: "cold" }, coldRuns);
    },
    requestAnswered(method, route, status, seconds) {
      requests.observe({ method, route, status: String(status) }, seconds);
    },
    scrape() {
      snapshot = undefined;
      return exposed.metrics();
    },
    contentType: registry.contentType,
  };
}
