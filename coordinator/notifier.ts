/**
 * In-process wake-ups for long-polls, so no request polls the store in a loop:
 * lease requests wait for work, job reads wait for a job to end.
 */
export class Notifier {
  private readonly workWaiters = new Set<() => void>();
  private readonly jobWaiters = new Map<string, Set<() => void>>();

  /** A job was queued (or requeued): every waiting lease request retries. */
  workAvailable(): void {
    for (const wake of [...this.workWaiters]) wake();
  }

  /** A job reached a terminal state. */
  jobFinished(id: string): void {
    for (const wake of [...(this.jobWaiters.get(id) ?? [])]) wake();
  }

  waitForWork(ms: number, signal?: AbortSignal): Promise<void> {
    return this.wait(this.workWaiters, ms, signal);
  }

  waitForJob(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    let waiters = this.jobWaiters.get(id);
    if (!waiters) {
      waiters = new Set();
      this.jobWaiters.set(id, waiters);
    }
    const set = waiters;
    return this.wait(set, ms, signal).finally(() => {
      if (set.size === 0) this.jobWaiters.delete(id);
    });
  }

  /** Releases every waiter (shutdown). */
  close(): void {
    this.workAvailable();
    for (const id of [...this.jobWaiters.keys()]) this.jobFinished(id);
  }

  private wait(waiters: Set<() => void>, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      waiters.add(wake);
      if (signal?.aborted) wake();
      else signal?.addEventListener("abort", wake, { once: true });
    });
  }
}
