import { EventEmitter, once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { LeasedJob, MaxLimits, Outcome } from "../protocol/index.js";
import { type CoordinatorApi, CoordinatorError } from "./coordinator-api.js";
import { executeJob, type JobSandbox } from "./executor.js";
import { ResultGroups } from "./result-groups.js";

export interface LoopSettings {
  slots: number;
  heartbeatMs: number;
  leaseWaitMs: number;
  /** This machine's largest limits: every job is clamped to them. */
  maxLimits?: MaxLimits;
  /** Called when the coordinator no longer knows this agent (e.g. its data was reset). */
  reregister: () => Promise<void>;
}

interface RunningJob {
  jobId: string;
  abort: AbortController;
  /** Stopped by the agent's own shutdown: nothing to report, the lease goes back. */
  abandoned: boolean;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** How long an undeliverable result is retried before it is given up (and logged). */
const DELIVERY_GIVE_UP_MS = 10 * 60_000;

/**
 * The agent's work loop: lease → run → report, with heartbeats beside it.
 * It knows jobs and leases, not containers (those are the sandbox's).
 */
export class AgentLoop {
  private readonly running = new Map<string, RunningJob>();
  private readonly deliveries = new Set<Promise<void>>();
  /**
   * Leases whose job has ended but whose result is not delivered yet. They
   * stay in every heartbeat, so the coordinator keeps them alive through an
   * outage instead of expiring them and running the job again.
   */
  private readonly undelivered = new Set<string>();
  /** Fires when a heartbeat gets through: pending deliveries retry at once. */
  private readonly coordinatorBack = new EventEmitter().setMaxListeners(0);
  private readonly slotFreed = new EventEmitter();
  private readonly stopLeasing = new AbortController();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private loopDone: Promise<void> | undefined;
  /** Results ready together go back in one request (agent/result-groups.ts). */
  readonly results: ResultGroups;

  constructor(
    private readonly api: CoordinatorApi,
    private readonly sandbox: JobSandbox,
    private readonly settings: LoopSettings,
    private readonly logger: Logger,
  ) {
    this.results = new ResultGroups(api, () =>
      logger.info("the coordinator has no results/group route: results go back one by one"),
    );
  }

  /** Number of jobs running now. */
  get busy(): number {
    return this.running.size;
  }

  start(): void {
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.settings.heartbeatMs);
    this.loopDone = this.leaseLoop();
  }

  /**
   * Stops leasing and lets running jobs finish for up to `graceMs` (their
   * results are reported); jobs still running then are stopped and not
   * reported, so their leases can go back to the queue (the caller
   * deregisters). Result deliveries get the same grace.
   */
  async stop(graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    const deadline = Date.now() + graceMs;
    this.stopLeasing.abort();
    this.slotFreed.emit("slot");
    await this.loopDone;
    const graceOver = Number.isFinite(graceMs)
      ? sleep(graceMs, "grace over" as const, { ref: false })
      : new Promise<never>(() => {});
    while (this.running.size > 0) {
      const woke = await Promise.race([once(this.slotFreed, "slot"), graceOver]);
      if (woke === "grace over") {
        this.logger.warn(
          { jobs: [...this.running.values()].map((job) => job.jobId) },
          "shutdown grace over: stopping the jobs still running; they will run again elsewhere",
        );
        for (const job of this.running.values()) {
          job.abandoned = true;
          job.abort.abort();
        }
        while (this.running.size > 0) await once(this.slotFreed, "slot");
      }
    }
    const left = Math.max(0, deadline - Date.now());
    await Promise.race([
      Promise.all(this.deliveries),
      Number.isFinite(left) ? sleep(left, undefined, { ref: false }) : new Promise<never>(() => {}),
    ]);
    clearInterval(this.heartbeatTimer);
  }

  /** Kills every running job's container now (a forced stop). */
  cancelAll(): void {
    for (const job of this.running.values()) job.abort.abort();
  }

  private async leaseLoop(): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.stopLeasing.signal.aborted) {
      const free = this.settings.slots - this.running.size;
      if (free <= 0) {
        await once(this.slotFreed, "slot");
        continue;
      }
      try {
        const jobs = await this.api.lease(free, this.settings.leaseWaitMs, this.stopLeasing.signal);
        backoff = BACKOFF_MIN_MS;
        for (const job of jobs) this.startJob(job);
      } catch (error) {
        if (this.stopLeasing.signal.aborted) return;
        if (error instanceof CoordinatorError && error.status === 401) {
          this.logger.warn("the coordinator no longer knows this agent; registering again");
          await this.settings.reregister().catch((reason: unknown) => {
            this.logger.warn({ err: reason }, "registering again failed");
          });
        } else {
          this.logger.warn({ err: describe(error), retryInMs: backoff }, "lease request failed");
        }
        await sleep(backoff, undefined, { signal: this.stopLeasing.signal }).catch(() => {});
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  private startJob(job: LeasedJob): void {
    const abort = new AbortController();
    const running: RunningJob = { jobId: job.id, abort, abandoned: false };
    this.running.set(job.leaseId, running);
    const log = this.logger.child({ jobId: job.id, leaseId: job.leaseId });
    log.debug("job started");
    void executeJob(this.sandbox, job, abort.signal, this.settings.maxLimits)
      .then((outcome) => {
        if (running.abandoned) return;
        log.info(
          { ok: outcome.ok, code: outcome.ok ? undefined : outcome.error.code },
          "job finished",
        );
        this.deliver(job.leaseId, outcome, log);
      })
      .finally(() => {
        this.running.delete(job.leaseId);
        this.slotFreed.emit("slot");
      });
  }

  /**
   * Reports a result, retrying with backoff while the coordinator is
   * unreachable. Results ready at the same time share one request (a
   * group), but each keeps its own retries, refusal and drop rules here.
   */
  private deliver(leaseId: string, outcome: Outcome, log: Logger): void {
    const delivery = (async () => {
      const giveUpAt = Date.now() + DELIVERY_GIVE_UP_MS;
      let backoff = BACKOFF_MIN_MS;
      let report = outcome;
      for (;;) {
        try {
          await this.results.post(leaseId, report);
          return;
        } catch (error) {
          if (
            error instanceof CoordinatorError &&
            REFUSED_RESULT.has(error.status) &&
            report === outcome
          ) {
            // The coordinator cannot take this result (too large, or a shape it
            // refuses): report that instead (once), or the job would wait for
            // its lease to expire and fail as NODE_LOST.
            log.warn({ status: error.status, code: error.code }, "result refused; reporting why");
            report = refusedResult(outcome, error);
            continue;
          }
          if (error instanceof CoordinatorError && error.status < 500) {
            // 409: the lease is stale (cancelled, expired and re-leased); nothing to report.
            log.info({ status: error.status, code: error.code }, "result not taken");
            return;
          }
          if (Date.now() > giveUpAt) {
            log.error({ err: describe(error) }, "giving up delivering a result");
            return;
          }
          log.warn({ err: describe(error), retryInMs: backoff }, "result delivery failed");
          const waiting = new AbortController();
          await Promise.race([
            sleep(backoff, undefined, { ref: false, signal: waiting.signal }),
            once(this.coordinatorBack, "up", { signal: waiting.signal }),
          ]).catch(() => {});
          waiting.abort(); // the loser's listener or timer goes away
          backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        }
      }
    })();
    this.deliveries.add(delivery);
    this.undelivered.add(leaseId);
    void delivery.finally(() => {
      this.deliveries.delete(delivery);
      this.undelivered.delete(leaseId);
    });
  }

  private async heartbeat(): Promise<void> {
    try {
      const stats = this.sandbox.takeStats?.();
      let cancel: string[];
      try {
        cancel = await this.api.heartbeat([...this.running.keys(), ...this.undelivered], stats);
      } catch (error) {
        // Not delivered (no answer at all): send these figures next time.
        if (stats && !(error instanceof CoordinatorError)) this.sandbox.returnStats?.(stats);
        throw error;
      }
      if (this.undelivered.size > 0) this.coordinatorBack.emit("up");
      for (const leaseId of cancel) {
        const job = this.running.get(leaseId);
        if (job) {
          this.logger.info(
            { jobId: job.jobId, leaseId },
            "stopping a job the coordinator cancelled",
          );
          job.abort.abort();
        }
      }
    } catch (error) {
      this.logger.debug({ err: describe(error) }, "heartbeat failed");
    }
  }
}

/** Statuses that refuse a result for what it is (not for the lease): 400, 413. */
const REFUSED_RESULT = new Set([400, 413]);

/** The outcome that replaces one the coordinator refused: small and always valid. */
function refusedResult(refused: Outcome, error: CoordinatorError): Outcome {
  return {
    ok: false,
    error: {
      code: "SANDBOX_ERROR",
      message:
        `the coordinator refused the job's result (${error.status} ${error.code}): ${error.message}`.slice(
          0,
          1000,
        ),
    },
    logs: "",
    stats: { durationMs: refused.stats.durationMs },
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
