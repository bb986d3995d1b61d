import { setTimeout as sleep } from "node:timers/promises";

/**
 * Lets background Docker work (booting a warm container's replacement,
 * removing a used one) wait until no job is on its hot path: from taking its
 * container until its result is out. Creating or removing a container is a
 * burst of CPU for dockerd, containerd and runc; on a small machine it slowed
 * a trivial job's run and result post from ~5 ms to ~30 ms when it started
 * the moment the job took its container. The wait is bounded, so a busy agent
 * still refills its pool.
 *
 * @example
 * const gate = new QuietGate({ tailMs: 20, maxWaitMs: 100 });
 * const leave = gate.enter(); try { await run(); } finally { leave(); }
 * await gate.whenQuiet(); // then boot the next container
 */
export class QuietGate {
  private busy = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly settings: {
      /** How long a job stays on its hot path after its run ends (its result goes out). */
      tailMs: number;
      /** The longest background work waits. */
      maxWaitMs: number;
    },
  ) {}

  /** A job's hot path starts; call the returned function when its run ends. */
  enter(): () => void {
    this.busy += 1;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const timer = setTimeout(() => {
        this.busy -= 1;
        if (this.busy === 0) for (const wake of this.waiters.splice(0)) wake();
      }, this.settings.tailMs);
      timer.unref();
    };
  }

  /** Resolves when no job is on its hot path, or after `maxWaitMs`. */
  async whenQuiet(): Promise<void> {
    if (this.busy === 0) return;
    const done = new AbortController();
    let wake = () => {};
    const quiet = new Promise<void>((resolve) => {
      wake = resolve;
      this.waiters.push(resolve);
    });
    try {
      await Promise.race([
        quiet,
        sleep(this.settings.maxWaitMs, undefined, { ref: false, signal: done.signal }).catch(
          () => {},
        ),
      ]);
    } finally {
      done.abort();
      this.waiters = this.waiters.filter((waiter) => waiter !== wake);
    }
  }
}
