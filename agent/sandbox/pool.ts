import type { Logger } from "pino";
import type { BootedContainer } from "./run.js";

export interface WarmPoolSettings {
  /** Containers kept booted and waiting; 0 turns the pool off. */
  size: number;
  /** An idle container older than this is replaced by a fresh one. */
  maxIdleMs: number;
}

/**
 * Boots one at a time: each boot is a burst of CPU for dockerd and node, and
 * refills must not starve the jobs running beside them.
 */
const MAX_PARALLEL_BOOTS = 1;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * Containers booted ahead of their jobs, so a job skips create/start/node boot
 * (~0.3 s here) and reaches a runner already waiting on stdin. The pool only
 * holds containers that have never run anything: `take` hands one out for
 * good, and the caller destroys it after its one job. It refills in the
 * background, backs off when booting fails (Docker down, image gone), replaces
 * containers idle for longer than `maxIdleMs` and any that died while idle.
 *
 * @example
 * const pool = new WarmPool(() => BootedContainer.boot(docker, options), { size: 4, maxIdleMs: 300_000 }, retire, log);
 * pool.start();
 * const warm = pool.take(); // undefined when none is ready: boot one cold
 */
export class WarmPool {
  private readonly idle: BootedContainer[] = [];
  private booting = 0;
  private readonly boots = new Set<Promise<void>>();
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private recycleTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Containers wanted now: the setting, or less while another runtime's jobs are in demand. */
  private size: number;

  constructor(
    private readonly boot: () => Promise<BootedContainer>,
    private readonly settings: WarmPoolSettings,
    /** Destroys a container the pool lets go of (the owner tracks the removal). */
    private readonly retire: (container: BootedContainer) => void,
    private readonly logger: Logger,
  ) {
    this.size = settings.size;
  }

  /**
   * Keeps `size` containers from now on: idle ones beyond it are destroyed
   * (the oldest first), and the pool refills up to it.
   */
  resize(size: number): void {
    this.size = Math.max(0, size);
    while (this.idle.length > 0 && this.idle.length + this.booting > this.size) {
      this.retire(this.idle.shift() as BootedContainer);
    }
    this.refill();
  }

  start(): void {
    if (this.settings.size <= 0) return;
    const every = Math.max(1_000, Math.min(this.settings.maxIdleMs / 2, 30_000));
    this.recycleTimer = setInterval(() => this.recycle(), every);
    this.recycleTimer.unref();
    this.refill();
  }

  /** Containers ready now, and being booted. */
  get stats(): { idle: number; booting: number } {
    return { idle: this.idle.length, booting: this.booting };
  }

  /** A ready container, taken out of the pool for good; undefined when none is ready. */
  take(): BootedContainer | undefined {
    let taken: BootedContainer | undefined;
    while (!taken && this.idle.length > 0) {
      const next = this.idle.shift() as BootedContainer;
      if (next.hasExited) this.retire(next);
      else taken = next;
    }
    this.refill();
    return taken;
  }

  /** Stops refilling, waits for boots under way and destroys every idle container. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.recycleTimer);
    await Promise.all(this.boots);
    for (const container of this.idle.splice(0)) this.retire(container);
  }

  private refill(): void {
    if (this.closed || this.retryTimer) return;
    while (this.idle.length + this.booting < this.size && this.booting < MAX_PARALLEL_BOOTS) {
      this.booting += 1;
      const boot = this.boot().then(
        (container) => this.booted(container),
        (error: unknown) => this.bootFailed(error),
      );
      this.boots.add(boot);
      void boot.finally(() => this.boots.delete(boot));
    }
  }

  private booted(container: BootedContainer): void {
    this.booting -= 1;
    this.failures = 0;
    if (this.closed) {
      this.retire(container);
      return;
    }
    this.idle.push(container);
    // One that dies while waiting (killed, OOM at boot, Docker restarted) is replaced at once.
    void container.whenExited().then(() => {
      const at = this.idle.indexOf(container);
      if (at === -1) return;
      this.idle.splice(at, 1);
      this.retire(container);
      this.refill();
    });
    this.refill();
  }

  private bootFailed(error: unknown): void {
    this.booting -= 1;
    this.failures += 1;
    if (this.closed) return;
    const delay = Math.min(RETRY_FIRST_MS * 2 ** (this.failures - 1), RETRY_MAX_MS);
    this.logger.warn(
      { err: error, retryInMs: delay, failures: this.failures },
      "could not boot a warm container; jobs use the cold path meanwhile",
    );
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.refill();
    }, delay);
    this.retryTimer.unref();
  }

  /** Replaces containers past their idle age and any that died while waiting. */
  private recycle(): void {
    const now = Date.now();
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const container = this.idle[i] as BootedContainer;
      if (container.hasExited || now - container.bootedAt > this.settings.maxIdleMs) {
        this.idle.splice(i, 1);
        this.retire(container);
      }
    }
    this.refill();
  }
}
