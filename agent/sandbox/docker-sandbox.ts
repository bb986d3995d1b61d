import type Dockerode from "dockerode";
import type { Logger } from "pino";
import type { HeartbeatStats, JobLimits, Runtime } from "../../protocol/index.js";
import type { JobSandbox } from "../executor.js";
import { containerOptions, type SandboxSettings } from "./options.js";
import { WarmPool, type WarmPoolSettings } from "./pool.js";
import { DemandSplit } from "./pool-split.js";
import { QuietGate } from "./quiet-gate.js";
import { BootedContainer, type ContainerExit, SandboxError } from "./run.js";

/** The runner image of each runtime this agent offers (node always). */
export type RuntimeImages = { node: string } & Partial<Record<Runtime, string>>;

/**
 * Background boots and removals wait for a job's hot path to end: its run,
 * then this long for its result to go out (a trivial job's result reaches
 * the coordinator in a few ms) — at most MAX_BACKGROUND_WAIT_MS.
 */
const RESULT_TAIL_MS = 20;
const MAX_BACKGROUND_WAIT_MS = 100;

/** Boot times kept for the next heartbeat at most (the protocol's bound). */
const MAX_START_SAMPLES = 1024;

/**
 * The executor's sandbox, backed by a Docker engine: one throwaway container
 * per job, from the runner image of the job's runtime. A job whose container
 * settings match the warm pool's (the coordinator's default limits, which
 * most jobs run under) takes a pre-booted container of its runtime; any other
 * job (or one arriving when the pool is empty) boots its own. The pool's
 * containers are split between runtimes by recent demand. Containers are
 * removed in the background once their job's result is known, so removal never
 * delays a result; `close` waits for them.
 */
export class DockerSandbox implements JobSandbox {
  private readonly pools = new Map<Runtime, WarmPool>();
  private readonly demand: DemandSplit;
  private readonly poolSize: number;
  private readonly pooledLimits: JobLimits;
  private readonly removals = new Set<Promise<void>>();
  private readonly jobPath = new QuietGate({
    tailMs: RESULT_TAIL_MS,
    maxWaitMs: MAX_BACKGROUND_WAIT_MS,
  });
  private warmRuns = 0;
  private coldRuns = 0;
  /** Not yet reported in a heartbeat. */
  private pending = { starts: [] as number[], warm: 0, cold: 0 };

  constructor(
    private readonly docker: Dockerode,
    private readonly images: RuntimeImages,
    private readonly agentName: string,
    private readonly settings: SandboxSettings,
    poolSettings: WarmPoolSettings & { limits: JobLimits },
    private readonly logger: Logger,
  ) {
    this.pooledLimits = poolSettings.limits;
    this.poolSize = poolSettings.size;
    const runtimes = this.runtimes;
    this.demand = new DemandSplit(runtimes);
    for (const runtime of runtimes) {
      this.pools.set(
        runtime,
        new WarmPool(
          // A warm container has no job yet: its job label stays empty. Booted
          // once the job that took the last one is out of the way.
          async () => {
            await this.jobPath.whenQuiet();
            return this.boot("", this.pooledLimits, runtime);
          },
          poolSettings,
          (container) => this.retire(container),
          logger.child({ runtime }),
        ),
      );
    }
  }

  /** The runtimes this sandbox has an image for, node first. */
  get runtimes(): Runtime[] {
    return DockerSandbox.runtimesOf(this.images);
  }

  static runtimesOf(images: RuntimeImages): Runtime[] {
    return (Object.keys(images) as Runtime[])
      .filter((runtime) => images[runtime])
      .sort((a, b) => (a === "node" ? -1 : b === "node" ? 1 : a.localeCompare(b)));
  }

  /** Starts filling the warm pool. */
  start(): void {
    for (const pool of this.pools.values()) pool.start();
    this.splitPool();
  }

  get stats(): { warmRuns: number; coldRuns: number; pool: { idle: number; booting: number } } {
    const pool = { idle: 0, booting: 0 };
    for (const each of this.pools.values()) {
      pool.idle += each.stats.idle;
      pool.booting += each.stats.booting;
    }
    return { warmRuns: this.warmRuns, coldRuns: this.coldRuns, pool };
  }

  async run(job: Parameters<JobSandbox["run"]>[0]): Promise<ContainerExit> {
    const runtime = job.runtime ?? "node";
    const pool = this.pools.get(runtime);
    if (!pool) {
      throw new SandboxError(`this agent has no ${runtime} runtime (its runner image is missing)`);
    }
    const leaveJobPath = this.jobPath.enter();
    const warm = sameContainer(job.limits, this.pooledLimits) ? pool.take() : undefined;
    this.demand.record(runtime);
    this.splitPool();
    const bootStarted = performance.now();
    let booted: BootedContainer;
    try {
      booted = warm ?? (await this.boot(job.jobId, job.limits, runtime));
    } catch (error) {
      leaveJobPath();
      throw error;
    }
    if (warm) {
      this.warmRuns += 1;
      this.pending.warm += 1;
    } else {
      this.coldRuns += 1;
      this.pending.cold += 1;
    }
    const log = this.logger.child({
      jobId: job.jobId,
      container: booted.container.id.slice(0, 12),
    });
    log.debug(
      { warm: Boolean(warm), bootMs: Math.round(performance.now() - bootStarted) },
      "job container ready",
    );
    try {
      const exit = await booted.run({
        stdin: job.stdin,
        nonce: job.nonce,
        caps: job.caps,
        timeoutMs: job.limits.timeoutMs,
        signal: job.signal,
      });
      log.debug(
        {
          ms: Math.round(exit.durationMs),
          exitCode: exit.exitCode,
          oom: exit.oomKilled,
          killedFor: exit.killedFor,
        },
        "job container done",
      );
      return exit;
    } finally {
      leaveJobPath();
      this.retire(booted, { afterJobPath: true });
    }
  }

  takeStats(): HeartbeatStats {
    const { starts, warm, cold } = this.pending;
    this.pending = { starts: [], warm: 0, cold: 0 };
    return { containerStartMs: starts, warmRuns: warm, coldRuns: cold };
  }

  returnStats(stats: HeartbeatStats): void {
    const starts = [...(stats.containerStartMs ?? []), ...this.pending.starts];
    this.pending = {
      starts: starts.slice(-MAX_START_SAMPLES),
      warm: this.pending.warm + (stats.warmRuns ?? 0),
      cold: this.pending.cold + (stats.coldRuns ?? 0),
    };
  }

  /** Empties the pool and waits until every container of this sandbox is removed. */
  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
    while (this.removals.size > 0) await Promise.all(this.removals);
  }

  /** Gives each runtime's pool its share of the warm containers. */
  private splitPool(): void {
    const shares = this.demand.shares(this.poolSize);
    for (const [runtime, pool] of this.pools) pool.resize(shares[runtime] ?? 0);
  }

  private async boot(jobId: string, limits: JobLimits, runtime: Runtime): Promise<BootedContainer> {
    const started = performance.now();
    const image = this.images[runtime];
    if (!image) throw new SandboxError(`this agent has no ${runtime} runtime`);
    const booted = await BootedContainer.boot(
      this.docker,
      containerOptions({
        image,
        jobId,
        agentName: this.agentName,
        limits,
        sandbox: this.settings,
      }),
    );
    // Create → the runner waiting on stdin (the ready marker), for the metrics.
    void booted.whenReady().then(() => {
      this.pending.starts.push(Math.round(performance.now() - started));
      if (this.pending.starts.length > MAX_START_SAMPLES) this.pending.starts.shift();
    });
    return booted;
  }

  private retire(container: BootedContainer, options = { afterJobPath: false }): void {
    const removal = (options.afterJobPath ? this.jobPath.whenQuiet() : Promise.resolve())
      .then(() => container.destroy())
      .catch((error: unknown) => {
        // The reaper removes it on the agent's next start; the job is unaffected.
        this.logger.warn(
          { err: error, container: container.container.id },
          "could not remove a job container",
        );
      })
      .finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }
}

/**
 * Jobs with these equal can share a container booted ahead of time (the
 * other limits are the agent's to apply: the clock and the output caps).
 */
function sameContainer(a: JobLimits, b: JobLimits): boolean {
  return (
    a.memoryMb === b.memoryMb && a.cpus === b.cpus && a.pids === b.pids && a.tmpfsMb === b.tmpfsMb
  );
}
