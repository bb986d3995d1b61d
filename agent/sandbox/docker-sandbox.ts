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
 * The reuse bound of a batch's container: it is thrown away after this many
 * items or this long after it booted, whichever comes first, so no state a
 * runner may slowly gather (zombies, heap, a leak in node) lives for long.
 */
export const MAX_ITEMS_PER_CONTAINER = 1_000;
export const MAX_CONTAINER_AGE_MS = 10 * 60_000;
/** A batch's idle container waits this long for the batch's next item, then goes. */
const REUSE_IDLE_MS = 2_000;
/** Idle batch containers kept at most, over all batches (the oldest goes first). */
const MAX_IDLE_REUSED = 8;

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
  /** Containers between two items of one batch, by batch, oldest first. */
  private readonly reusable = new Map<string, IdleContainer[]>();
  private idleReused = 0;
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
    if (job.reuseKey !== undefined) {
      const parked = this.takeReusable(job.reuseKey);
      if (parked) return this.runReused(parked, job, leaveJobPath);
    }
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
    if (job.reuseKey !== undefined) return this.runReused(booted, job, leaveJobPath);
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

  /**
   * One batch item on `booted` (fresh, or parked after the batch's previous
   * item). A container still fit for another item is parked for the batch's
   * next one; any other (crashed, killed, out of memory, past its bound) goes.
   */
  private async runReused(
    booted: BootedContainer,
    job: Parameters<JobSandbox["run"]>[0],
    leaveJobPath: () => void,
  ): Promise<ContainerExit> {
    const key = job.reuseKey as string;
    let keep = false;
    try {
      const exit = await booted.runItem({
        stdin: job.stdin,
        nonce: job.nonce,
        caps: job.caps,
        timeoutMs: job.limits.timeoutMs,
        signal: job.signal,
      });
      keep =
        exit.reuse?.reusable === true &&
        booted.itemsRun < MAX_ITEMS_PER_CONTAINER &&
        Date.now() - booted.bootedAt < MAX_CONTAINER_AGE_MS;
      return exit;
    } finally {
      leaveJobPath();
      if (keep) this.park(key, booted);
      else this.retire(booted, { afterJobPath: true });
    }
  }

  private park(key: string, container: BootedContainer): void {
    const idle = this.reusable.get(key) ?? [];
    const parked: IdleContainer = {
      container,
      timer: setTimeout(() => {
        if (this.unpark(key, parked)) this.retire(container);
      }, REUSE_IDLE_MS),
    };
    parked.timer.unref();
    idle.push(parked);
    this.reusable.set(key, idle);
    this.idleReused += 1;
    while (this.idleReused > MAX_IDLE_REUSED) {
      const [oldestKey, list] = this.reusable.entries().next().value as [string, IdleContainer[]];
      const oldest = list[0] as IdleContainer;
      this.unpark(oldestKey, oldest);
      this.retire(oldest.container);
    }
  }

  /** Takes `parked` out of the idle set; false when someone else took it first. */
  private unpark(key: string, parked: IdleContainer): boolean {
    const idle = this.reusable.get(key);
    const at = idle?.indexOf(parked) ?? -1;
    if (!idle || at === -1) return false;
    idle.splice(at, 1);
    if (idle.length === 0) this.reusable.delete(key);
    this.idleReused -= 1;
    clearTimeout(parked.timer);
    return true;
  }

  /** The batch's most recently parked container that is still up, if any. */
  private takeReusable(key: string): BootedContainer | undefined {
    for (;;) {
      const parked = this.reusable.get(key)?.at(-1);
      if (!parked) return undefined;
      this.unpark(key, parked);
      if (!parked.container.hasExited) return parked.container;
      this.retire(parked.container);
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
    for (const [key, idle] of [...this.reusable]) {
      for (const parked of [...idle]) {
        this.unpark(key, parked);
        this.retire(parked.container);
      }
    }
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

interface IdleContainer {
  container: BootedContainer;
  timer: NodeJS.Timeout;
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
