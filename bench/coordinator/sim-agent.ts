import { performance } from "node:perf_hooks";
import type {
  LeaseResponse,
  Outcome,
  RegisterAgentRequest,
  RegisterAgentResponse,
} from "../../protocol/index.js";
import { type LoopbackJson, sleep } from "./http.js";

/** Running totals of every simulated agent of a fleet (read by the phases as deltas). */
export interface FleetCounters {
  leaseCalls: number;
  /** Lease answers with no job (long-poll timed out, or a woken poll lost the race). */
  emptyLeases: number;
  leasedJobs: number;
  results: number;
  heartbeats: number;
  /** Non-2xx answers and failed requests, by route. */
  errors: { lease: number; result: number; heartbeat: number };
}

/** Optional timestamps (performance.now()) of each job, for the latency phase. */
export interface JobObserver {
  leased(jobId: string, at: number): void;
  finished(jobId: string, at: number): void;
}

/** The outcome a real agent would post for `exports.main = () => 1`. */
const OUTCOME: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 0 } };
const OUTCOME_JSON = JSON.stringify(OUTCOME);

/** How long one lease long-poll waits on the coordinator (the real agent waits longer; see stop()). */
const LEASE_WAIT_MS = 5_000;

/**
 * One simulated agent: the real agent's lease loop (agent/loop.ts) — ask for
 * the free slots with a long-poll, start each leased job, lease again while
 * slots are free, heartbeat the running leases — except that a job "runs" by
 * posting its successful outcome at once. Only the coordinator does real work.
 */
class SimulatedAgent {
  readonly #inFlight = new Map<string, string>();
  #agentId = "";
  #token = "";
  #stopping = false;
  #abort = new AbortController();
  #slotFreed: (() => void) | undefined;
  #loop: Promise<void> = Promise.resolve();
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #heartbeatMs = 1_000;
  readonly #reports = new Set<Promise<void>>();

  constructor(
    private readonly http: LoopbackJson,
    private readonly slots: number,
    private readonly counters: FleetCounters,
    private readonly observe: () => JobObserver | undefined,
  ) {}

  async register(joinToken: string, name: string): Promise<void> {
    const request: RegisterAgentRequest = {
      name,
      hostname: "bench",
      slots: this.slots,
      version: "bench",
      labels: {},
    };
    const answer = await this.http.post("/agents/register", joinToken, JSON.stringify(request));
    if (answer.status !== 200) {
      throw new Error(`register answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    const registered = answer.body as RegisterAgentResponse;
    this.#agentId = registered.agentId;
    this.#token = registered.token;
    this.#heartbeatMs = registered.heartbeatMs;
  }

  start(): void {
    this.#stopping = false;
    this.#abort = new AbortController();
    this.#heartbeatTimer = setInterval(() => void this.#heartbeat(), this.#heartbeatMs);
    this.#loop = this.#leaseLoop();
  }

  /** Ends the long-poll at once (aborts it), then waits for the results in flight. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    this.#slotFreed?.();
    clearInterval(this.#heartbeatTimer);
    await this.#loop;
    await Promise.all([...this.#reports]);
  }

  async #leaseLoop(): Promise<void> {
    const path = `/agents/${this.#agentId}/lease`;
    while (!this.#stopping) {
      const free = this.slots - this.#inFlight.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          this.#slotFreed = resolve;
        });
        this.#slotFreed = undefined;
        continue;
      }
      let answer: Awaited<ReturnType<LoopbackJson["post"]>>;
      try {
        answer = await this.http.post(
          path,
          this.#token,
          `{"free":${free},"waitMs":${LEASE_WAIT_MS}}`,
          this.#abort.signal,
        );
      } catch {
        if (this.#stopping) break;
        this.counters.errors.lease++;
        await sleep(50);
        continue;
      }
      this.counters.leaseCalls++;
      if (answer.status !== 200) {
        this.counters.errors.lease++;
        await sleep(50);
        continue;
      }
      const { jobs } = answer.body as LeaseResponse;
      if (jobs.length === 0) this.counters.emptyLeases++;
      const at = performance.now();
      const observer = this.observe();
      for (const job of jobs) {
        this.counters.leasedJobs++;
        observer?.leased(job.id, at);
        this.#inFlight.set(job.leaseId, job.id);
        const report = this.#report(job.id, job.leaseId);
        this.#reports.add(report);
        void report.finally(() => this.#reports.delete(report));
      }
    }
  }

  async #report(jobId: string, leaseId: string): Promise<void> {
    try {
      const answer = await this.http.post(
        `/agents/${this.#agentId}/results`,
        this.#token,
        `{"leaseId":"${leaseId}","outcome":${OUTCOME_JSON}}`,
      );
      if (answer.status === 200) {
        this.counters.results++;
        this.observe()?.finished(jobId, performance.now());
      } else {
        this.counters.errors.result++;
      }
    } catch {
      this.counters.errors.result++;
    } finally {
      this.#inFlight.delete(leaseId);
      this.#slotFreed?.();
    }
  }

  async #heartbeat(): Promise<void> {
    try {
      const answer = await this.http.post(
        `/agents/${this.#agentId}/heartbeat`,
        this.#token,
        JSON.stringify({ running: [...this.#inFlight.keys()] }),
      );
      if (answer.status === 200) this.counters.heartbeats++;
      else this.counters.errors.heartbeat++;
    } catch {
      this.counters.errors.heartbeat++;
    }
  }
}

/**
 * N simulated agents of S slots each, registered once and started/stopped
 * together between phases (stopped while the bench fills the queue, so the
 * queue really holds what was enqueued).
 *
 * @example
 * const fleet = await AgentFleet.register(http, joinToken, { agents: 50, slots: 4 });
 * fleet.start(); … await fleet.stop();
 */
export class AgentFleet {
  readonly counters: FleetCounters = {
    leaseCalls: 0,
    emptyLeases: 0,
    leasedJobs: 0,
    results: 0,
    heartbeats: 0,
    errors: { lease: 0, result: 0, heartbeat: 0 },
  };
  /** Set while a phase wants per-job timestamps; unset, the agents record nothing. */
  observer: JobObserver | undefined;
  readonly #agents: SimulatedAgent[];

  private constructor(agents: (fleet: AgentFleet) => SimulatedAgent[]) {
    this.#agents = agents(this);
  }

  static async register(
    http: LoopbackJson,
    joinToken: string,
    options: { agents: number; slots: number },
  ): Promise<AgentFleet> {
    const fleet = new AgentFleet((self) =>
      Array.from(
        { length: options.agents },
        () => new SimulatedAgent(http, options.slots, self.counters, () => self.observer),
      ),
    );
    await Promise.all(
      fleet.#agents.map((agent, index) => agent.register(joinToken, `bench-${index + 1}`)),
    );
    return fleet;
  }

  start(): void {
    for (const agent of this.#agents) agent.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.#agents.map((agent) => agent.stop()));
  }
}
