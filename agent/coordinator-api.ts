import { z } from "zod";
import {
  API_PREFIX,
  HeartbeatResponse,
  type HeartbeatStats,
  type LeasedJob,
  LeaseResponse,
  type Outcome,
  type RegisterAgentRequest,
  RegisterAgentResponse,
  ResultGroupResponse,
  ResultResponse,
} from "../protocol/index.js";
import { FailoverHttp, splitServers } from "../protocol/servers.js";

/** An HTTP answer that is not 2xx, with the coordinator's error code. */
export class CoordinatorError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "CoordinatorError";
  }
}

/**
 * A coordinator silent this long (beyond a long-poll's own wait) is taken for
 * dead, and the next one of the list is tried: a stopped (SIGSTOP) process
 * still accepts connections. Below the lease TTL's default, so the agent's
 * heartbeats reach another coordinator before its leases expire.
 */
const SILENCE_MS = 5_000;

/**
 * The agent's side of the agent routes (DESIGN.md §3). Every call is one
 * outbound HTTP request, so a lab machine behind NAT works. `server` may list
 * several coordinators of one store (`URL1,URL2`): calls stick to the one
 * that answers and fail over on connection errors, silence and 5xx, and the
 * agent's identity and leases (kept in the store) go on as they were.
 */
export class CoordinatorApi {
  private agentId = "";
  private agentToken = "";
  /** node:http, not fetch: undici alone is ~35 MB of an idle agent's RSS. */
  private readonly http: FailoverHttp;

  constructor(
    server: string,
    private readonly joinToken: string,
  ) {
    this.http = new FailoverHttp(splitServers(server));
  }

  /** The coordinator calls go to now. */
  get server(): string {
    return this.http.current;
  }

  async register(request: RegisterAgentRequest): Promise<RegisterAgentResponse> {
    const answer = await this.post(
      "/agents/register",
      request,
      RegisterAgentResponse,
      this.joinToken,
    );
    this.agentId = answer.agentId;
    this.agentToken = answer.token;
    return answer;
  }

  async lease(free: number, waitMs: number, signal?: AbortSignal): Promise<LeasedJob[]> {
    const answer = await this.post(
      `/agents/${this.agentId}/lease`,
      { free, waitMs },
      LeaseResponse,
      this.agentToken,
      signal,
      "POST",
      waitMs,
    );
    return answer.jobs;
  }

  async heartbeat(running: string[], stats?: HeartbeatStats): Promise<string[]> {
    const answer = await this.post(
      `/agents/${this.agentId}/heartbeat`,
      stats ? { running, stats } : { running },
      HeartbeatResponse,
      this.agentToken,
    );
    return answer.cancel;
  }

  /** One result; `json` is `{leaseId, outcome}` when the caller has serialised it already. */
  async postResult(
    leaseId: string,
    outcome: Outcome,
    json = JSON.stringify({ leaseId, outcome }),
  ): Promise<boolean> {
    const answer = await this.send(
      `/agents/${this.agentId}/results`,
      json,
      ResultResponse,
      this.agentToken,
    );
    return answer.accepted;
  }

  /**
   * Many results in one request and one commit; `results` are the JSON texts
   * of each `{leaseId, outcome}` (serialised once, when the group was sized).
   */
  async postResultGroup(results: readonly string[]): Promise<ResultGroupResponse["results"]> {
    const answer = await this.send(
      `/agents/${this.agentId}/results/group`,
      `{"results":[${results.join(",")}]}`,
      ResultGroupResponse,
      this.agentToken,
    );
    return answer.results;
  }

  /** Leaves the cluster: the token stops working, leases still held are queued again at once. */
  async deregister(): Promise<void> {
    await this.post(
      `/agents/${this.agentId}`,
      undefined,
      z.unknown(),
      this.agentToken,
      undefined,
      "DELETE",
    );
  }

  private async post<T extends z.ZodType>(
    path: string,
    body: unknown,
    schema: T,
    token: string,
    signal?: AbortSignal,
    method: "POST" | "DELETE" = "POST",
    waitMs = 0,
  ): Promise<z.infer<T>> {
    return this.send(
      path,
      body === undefined ? undefined : JSON.stringify(body),
      schema,
      token,
      signal,
      method,
      waitMs,
    );
  }

  /** One request with a body already serialised as JSON text. */
  private async send<T extends z.ZodType>(
    path: string,
    body: string | undefined,
    schema: T,
    token: string,
    signal?: AbortSignal,
    method: "POST" | "DELETE" = "POST",
    waitMs = 0,
  ): Promise<z.infer<T>> {
    const { answer: response } = await this.http.request(`${API_PREFIX}${path}`, {
      method,
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { body }),
      ...(signal ? { signal } : {}),
      timeoutMs: waitMs + SILENCE_MS,
    });
    const text = response.text;
    const failed = response.status < 200 || response.status >= 300;
    // An error answer that is not JSON (a proxy's 404 page) still keeps its status.
    const json = text
      ? failed
        ? parseOrUndefined(text)
        : (JSON.parse(text) as unknown)
      : undefined;
    if (failed) {
      const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new CoordinatorError(
        response.status,
        error?.code ?? "HTTP_ERROR",
        error?.message ?? `HTTP ${response.status}`,
      );
    }
    return schema.parse(json);
  }
}

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
