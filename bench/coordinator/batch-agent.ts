import type {
  LeaseResponse,
  Outcome,
  RegisterAgentRequest,
  RegisterAgentResponse,
  ResultGroupResponse,
} from "../../protocol/index.js";
import { MAX_RESULT_GROUP } from "../../protocol/index.js";
import { type LoopbackJson, sleep } from "./http.js";

/** Running totals of a batch fleet (read by the phases as deltas). */
export interface BatchFleetCounters {
  leaseCalls: number;
  leasedItems: number;
  /** Results the coordinator took (accepted in a group's answer). */
  results: number;
  groupRequests: number;
  heartbeats: number;
  /** Non-2xx answers, failed requests and refused results. */
  errors: number;
  /** Wall ms of the lease requests that brought work (sent → answered), summed. */
  leaseMs: number;
  /** Wall ms of the result group requests, summed. */
  groupMs: number;
}

/** The outcome a real agent would post for `exports.main = () => 1`. */
const OUTCOME: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 0 } };
const OUTCOME_JSON = JSON.stringify(OUTCOME);
const LEASE_WAIT_MS = 5_000;

/**
 * One simulated agent speaking the batched protocol as agent/loop.ts and
 * agent/result-groups.ts do: it asks for all its free slots in one lease,
 * an item "runs" by finishing at once, and the results go back in groups
 * (at most MAX_RESULT_GROUP, one group request on its way at a time, the
 * ones that finish meanwhile waiting for the next).
 */
class BatchAgent {
  readonly #inFlight = new Set<string>();
  readonly #pending: string[] = [];
  #agentId = "";
  #token = "";
  #stopping = false;
  #abort = new AbortController();
  #slotFreed: (() => void) | undefined;
  #loop: Promise<void> = Promise.resolve();
  #reporting: Promise<void> | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #heartbeatMs = 1_000;

  constructor(
    private readonly http: LoopbackJson,
    private readonly slots: number,
    private readonly counters: BatchFleetCounters,
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
    if (answer.status !== 200) throw new Error(`register answered ${answer.status}`);
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

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    this.#slotFreed?.();
    clearInterval(this.#heartbeatTimer);
    await this.#loop;
    while (this.#reporting) await this.#reporting;
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
      const sent = performance.now();
      try {
        answer = await this.http.post(
          path,
          this.#token,
          `{"free":${free},"waitMs":${LEASE_WAIT_MS}}`,
          this.#abort.signal,
        );
      } catch {
        if (this.#stopping) break;
        this.counters.errors++;
        await sleep(50);
        continue;
      }
      this.counters.leaseCalls++;
      if (answer.status !== 200) {
        this.counters.errors++;
        await sleep(50);
        continue;
      }
      const { jobs } = answer.body as LeaseResponse;
      this.counters.leasedItems += jobs.length;
      if (jobs.length > 0) this.counters.leaseMs += performance.now() - sent;
      for (const job of jobs) {
        this.#inFlight.add(job.leaseId);
        this.#pending.push(job.leaseId);
      }
      if (jobs.length > 0) this.#report();
    }
  }

  /** Sends the pending results, one group at a time, until none is left. */
  #report(): void {
    if (this.#reporting) return;
    this.#reporting = (async () => {
      while (this.#pending.length > 0) {
        const group = this.#pending.splice(0, MAX_RESULT_GROUP);
        const body = `{"results":[${group
          .map((leaseId) => `{"leaseId":"${leaseId}","outcome":${OUTCOME_JSON}}`)
          .join(",")}]}`;
        const sent = performance.now();
        try {
          const answer = await this.http.post(
            `/agents/${this.#agentId}/results/group`,
            this.#token,
            body,
          );
          this.counters.groupRequests++;
          this.counters.groupMs += performance.now() - sent;
          if (answer.status === 200) {
            for (const result of (answer.body as ResultGroupResponse).results) {
              if (result.accepted) this.counters.results++;
              else this.counters.errors++;
            }
          } else {
            this.counters.errors += group.length;
          }
        } catch {
          this.counters.errors += group.length;
        }
        for (const leaseId of group) this.#inFlight.delete(leaseId);
        this.#slotFreed?.();
      }
    })();
    void this.#reporting.finally(() => {
      this.#reporting = undefined;
    });
  }

  async #heartbeat(): Promise<void> {
    try {
      const answer = await this.http.post(
        `/agents/${this.#agentId}/heartbeat`,
        this.#token,
        JSON.stringify({ running: [...this.#inFlight] }),
      );
      if (answer.status === 200) this.counters.heartbeats++;
      else this.counters.errors++;
    } catch {
      this.counters.errors++;
    }
  }
}

/**
 * N simulated batch agents of S slots each, started and stopped together.
 * Given several coordinators' clients, agent i registers with and talks to
 * coordinator i mod n (as agents spread over coordinators on one database).
 *
 * @example
 * const fleet = await BatchFleet.register(http, joinToken, { agents: 4, slots: 256 });
 * fleet.start(); … await fleet.stop();
 */
export class BatchFleet {
  readonly counters: BatchFleetCounters = {
    leaseCalls: 0,
    leasedItems: 0,
    results: 0,
    groupRequests: 0,
    heartbeats: 0,
    errors: 0,
    leaseMs: 0,
    groupMs: 0,
  };
  readonly #agents: BatchAgent[];

  private constructor(
    http: LoopbackJson | readonly LoopbackJson[],
    options: { agents: number; slots: number },
  ) {
    const clients = Array.isArray(http) ? http : [http as LoopbackJson];
    this.#agents = Array.from(
      { length: options.agents },
      (_, index) =>
        new BatchAgent(
          clients[index % clients.length] as LoopbackJson,
          options.slots,
          this.counters,
        ),
    );
  }

  static async register(
    http: LoopbackJson | readonly LoopbackJson[],
    joinToken: string,
    options: { agents: number; slots: number },
  ): Promise<BatchFleet> {
    const fleet = new BatchFleet(http, options);
    await Promise.all(
      fleet.#agents.map((agent, index) => agent.register(joinToken, `batch-bench-${index + 1}`)),
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
