type Wake = () => void;

/**
 * In-process wake-ups for long-polls, so no request polls the store: lease
 * requests wait for work, job reads wait for a job to end. A waiter leaves
 * when woken, when its time is up, or when its HTTP request is aborted.
 *
 * Waking is a hint, never a hand-over: a woken request asks the store again,
 * so a wake-up that finds nothing (another agent took the job) is harmless.
 *
 * @example
 * await notifier.waitForWork(5_000, c.req.raw.signal);
 * // elsewhere, after store.enqueue(...):
 * notifier.workAvailable();
 */
export class Notifier {
  #closed = false;
  readonly #leaseWaiters = new Set<Wake>();
  readonly #jobWaiters = new Map<string, Set<Wake>>();
  /** Each agent's own lease waiters (also in #leaseWaiters), for `slotsFreed`. */
  readonly #agentWaiters = new Map<string, Set<Wake>>();

  /** True once shutdown began: waits end at once and long-polls answer. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many requests are waiting now (for tests and metrics). */
  get waiting(): { lease: number; jobs: number } {
    let jobs = 0;
    for (const waiters of this.#jobWaiters.values()) jobs += waiters.size;
    return { lease: this.#leaseWaiters.size, jobs };
  }

  /**
   * A job was queued (or queued again), or a node may lease again: lease
   * waiters retry, the longest-waiting first. `count` bounds how many: one
   * queued job wakes one waiter, not every agent of the lab (a herd of empty
   * lease transactions per submit). A waiter that finds nothing it may take
   * (its node is draining or full) costs at most one sweep interval: the
   * sweeper wakes everyone while jobs sit queued.
   */
  workAvailable(count = Number.POSITIVE_INFINITY): void {
    let woken = 0;
    for (const wake of [...this.#leaseWaiters]) {
      if (woken++ >= count) break;
      wake();
    }
  }

  /**
   * Results of `agentId`'s jobs were taken: its slots are free again, so its
   * own lease waiters retry now (a lease that came before its result's commit
   * found no room and waits), not at the next sweep.
   */
  slotsFreed(agentId: string): void {
    for (const wake of [...(this.#agentWaiters.get(agentId) ?? [])]) wake();
  }

  /** A job reached a terminal state: its readers answer. */
  jobFinished(id: string): void {
    for (const wake of [...(this.#jobWaiters.get(id) ?? [])]) wake();
  }

  /**
   * An item of batch `id` ended (or was queued again): its result streams
   * read on. Batch and job ids never collide (`b_…`, `j_…`), so they share
   * the waiters' map.
   */
  batchProgress(id: string): void {
    this.jobFinished(id);
  }

  /** Jobs that failed at once (their node was lost): their readers, and their batches' streams, answer. */
  jobsFailed({ failed, batches }: { failed: readonly string[]; batches: readonly string[] }): void {
    for (const id of failed) this.jobFinished(id);
    for (const id of batches) this.batchProgress(id);
  }

  /**
   * Every lease waiter retries now: a poll (the sweeper's, while jobs sit
   * queued), not news of work. Unlike workAvailable, a coordinator that
   * publishes its wakes to others (cluster/clusterNotifier.ts) keeps this one
   * to itself.
   */
  retryLeases(): void {
    for (const wake of [...this.#leaseWaiters]) wake();
  }

  /**
   * Every waiter, lease and job or batch reader alike, asks the store again:
   * for when wakes may have been missed (a cluster's LISTEN connection came
   * back) or were too many to name. Kept to this process, as retryLeases.
   */
  wakeAll(): void {
    this.retryLeases();
    for (const waiters of [...this.#jobWaiters.values()]) for (const wake of [...waiters]) wake();
  }

  /** Resolves on the next batchProgress(id), after `ms`, on abort, or on close. */
  waitForBatch(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    return this.waitForJob(id, ms, signal);
  }

  /**
   * Resolves on the next workAvailable() (or slotsFreed(agentId)), after
   * `ms`, on abort, or on close.
   */
  waitForWork(ms: number, signal?: AbortSignal, agentId?: string): Promise<void> {
    if (agentId === undefined) return this.#wait(this.#leaseWaiters, ms, signal);
    let own = this.#agentWaiters.get(agentId);
    if (!own) {
      own = new Set();
      this.#agentWaiters.set(agentId, own);
    }
    const set = own;
    return this.#wait(this.#leaseWaiters, ms, signal, set).finally(() => {
      if (set.size === 0 && this.#agentWaiters.get(agentId) === set) {
        this.#agentWaiters.delete(agentId);
      }
    });
  }

  /** Resolves when job `id` finishes, after `ms`, on abort, or on close. */
  waitForJob(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    let waiters = this.#jobWaiters.get(id);
    if (!waiters) {
      waiters = new Set();
      this.#jobWaiters.set(id, waiters);
    }
    const set = waiters;
    return this.#wait(set, ms, signal).finally(() => {
      if (set.size === 0 && this.#jobWaiters.get(id) === set) this.#jobWaiters.delete(id);
    });
  }

  /** Releases every waiter and makes later waits return at once (shutdown). */
  close(): void {
    this.#closed = true;
    this.wakeAll();
  }

  #wait(waiters: Set<Wake>, ms: number, signal?: AbortSignal, also?: Set<Wake>): Promise<void> {
    if (this.#closed || signal?.aborted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        waiters.delete(wake);
        also?.delete(wake);
        signal?.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      waiters.add(wake);
      also?.add(wake);
      signal?.addEventListener("abort", wake, { once: true });
    });
  }
}
