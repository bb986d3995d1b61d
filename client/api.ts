import * as z from "zod";
import { API_PREFIX } from "../protocol/addresses.js";
import type { NodeInfo } from "../protocol/admin.js";
import type {
  Batch,
  BatchPage,
  ListBatchesQuery,
  RetryBatchResponse,
} from "../protocol/batches.js";
import type { HttpAnswer } from "../protocol/http-client.js";
import {
  isTerminal,
  Job,
  JobPage,
  type ListJobsQuery,
  type SubmitJobRequest,
  SubmitJobResponse,
} from "../protocol/jobs.js";
import { FailoverHttp, splitServers } from "../protocol/servers.js";
import {
  type AddUserRequest,
  AuditPage,
  type ListAuditQuery,
  RemoveUserResponse,
  type UserInfo,
  UserList,
  UserToken,
} from "../protocol/users.js";

// The batch and node shapes are built on first use: `labrun submit`, `status`
// and `jobs` never need them, and a CLI process runs one command. (The job
// and user shapes are built anyway: jobs.ts imports users.ts.)
const batchShapes = () => import("../protocol/batches.js");
const nodeShapes = () => import("../protocol/admin.js");

/** The coordinator answered with an error body (`{error:{code,message}}`). */
export class LabrunApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "LabrunApiError";
  }
}

/** No answer at all: connection refused, DNS, reset. */
export class ServerUnreachableError extends Error {
  constructor(
    readonly server: string,
    cause: unknown,
  ) {
    super(
      `cannot reach the labrun coordinator at ${server} (${describeCause(cause)}) — is it running? Start one with \`labrun up\`, or pass --server`,
      { cause },
    );
    this.name = "ServerUnreachableError";
  }
}

/** How long one long-poll request waits on the server before asking again. */
const LONG_POLL_SECONDS = 30;
/**
 * A server silent for this long (beyond a long-poll's own wait) is taken for
 * dead and the next one is tried: a stopped process still accepts connections.
 */
const SILENCE_MS = 30_000;

/**
 * Typed client for labrun's client and admin routes.
 *
 * @example
 * const labrun = new LabrunClient({ server: "http://127.0.0.1:7878", token });
 * const { id } = await labrun.submit({ source: "exports.main = () => 42" });
 * const job = await labrun.wait(id); // job.outcome → { ok: true, result: 42, … }
 *
 * `server` may list several coordinators of one store, `URL1,URL2`: requests
 * stick to the one that answers and fail over on connection errors and 5xx
 * (protocol/servers.ts), so a `wait` goes on on the other server.
 */
export class LabrunClient {
  private readonly token: string;
  private readonly http: FailoverHttp;

  constructor(options: { server: string; token: string }) {
    this.http = new FailoverHttp(splitServers(options.server));
    this.token = options.token;
  }

  /** The server requests go to now (the one that answered last). */
  get server(): string {
    return this.http.current;
  }

  submit(request: SubmitJobRequest): Promise<SubmitJobResponse> {
    return this.call("POST", "/jobs", SubmitJobResponse, request);
  }

  /** The job now, or (with `waitSeconds`) as soon as it is terminal, whichever comes first. */
  get(id: string, waitSeconds?: number): Promise<Job> {
    const query = waitSeconds ? `?wait=${waitSeconds}` : "";
    return this.call("GET", `/jobs/${encodeURIComponent(id)}${query}`, Job, undefined, waitSeconds);
  }

  /** Waits until the job is terminal (long-polls; no busy loop). */
  async wait(id: string, options: { timeoutMs?: number } = {}): Promise<Job> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const job = await this.get(id, Math.max(1, Math.min(LONG_POLL_SECONDS, left)));
      if (isTerminal(job.state) || Date.now() >= deadline) return job;
    }
  }

  list(query: ListJobsQuery = {}): Promise<JobPage> {
    return this.call("GET", `/jobs${queryString(query)}`, JobPage);
  }

  cancel(id: string): Promise<Job> {
    return this.call("POST", `/jobs/${encodeURIComponent(id)}/cancel`, Job);
  }

  async getBatch(id: string): Promise<Batch> {
    return this.call("GET", `/batches/${encodeURIComponent(id)}`, (await batchShapes()).Batch);
  }

  async listBatches(query: ListBatchesQuery = {}): Promise<BatchPage> {
    return this.call("GET", `/batches${queryString(query)}`, (await batchShapes()).BatchPage);
  }

  /** Queued items are cancelled at once, running ones are stopped by their agents. */
  async cancelBatch(id: string): Promise<Batch> {
    const { Batch } = await batchShapes();
    return this.call("POST", `/batches/${encodeURIComponent(id)}/cancel`, Batch);
  }

  /** Queues the batch's failed items again. */
  async retryBatch(id: string): Promise<RetryBatchResponse> {
    const { RetryBatchResponse } = await batchShapes();
    return this.call("POST", `/batches/${encodeURIComponent(id)}/retry`, RetryBatchResponse);
  }

  /** Needs the admin token. */
  async nodes(): Promise<NodeInfo[]> {
    return (await this.call("GET", "/admin/nodes", (await nodeShapes()).NodeList)).nodes;
  }

  /** A draining node takes no new jobs and finishes the ones it has (admin token). */
  async drain(nodeId: string): Promise<NodeInfo> {
    const { NodeInfo } = await nodeShapes();
    return this.call("POST", `/admin/nodes/${encodeURIComponent(nodeId)}/drain`, NodeInfo);
  }

  async resume(nodeId: string): Promise<NodeInfo> {
    const { NodeInfo } = await nodeShapes();
    return this.call("POST", `/admin/nodes/${encodeURIComponent(nodeId)}/resume`, NodeInfo);
  }

  /** Forgets a node: its token stops working, its jobs are queued again (admin token). */
  async removeNode(nodeId: string): Promise<void> {
    await this.call("DELETE", `/admin/nodes/${encodeURIComponent(nodeId)}`, z.unknown());
  }

  /** Adds a user; the answer holds their token, shown only this once (admin token). */
  addUser(user: AddUserRequest): Promise<UserToken> {
    return this.call("POST", "/admin/users", UserToken, user);
  }

  /** Every user with their usage, share and quotas (admin token). */
  async users(): Promise<UserInfo[]> {
    return (await this.call("GET", "/admin/users", UserList)).users;
  }

  /** Their token stops at once; their queued jobs are cancelled, running ones finish (admin token). */
  removeUser(name: string): Promise<RemoveUserResponse> {
    return this.call("DELETE", `/admin/users/${encodeURIComponent(name)}`, RemoveUserResponse);
  }

  /** A new token for the user; the old one stops at once (admin token). */
  rotateUserToken(name: string): Promise<UserToken> {
    return this.call("POST", `/admin/users/${encodeURIComponent(name)}/token`, UserToken);
  }

  /** The audit log of admin actions, newest first (admin token). */
  audit(query: ListAuditQuery = {}): Promise<AuditPage> {
    return this.call("GET", `/admin/audit${queryString(query)}`, AuditPage);
  }

  /** `GET /healthz` (no token): the server's answer and its clock (the Date header). */
  async health(): Promise<{ ok: boolean; serverDate: Date | null }> {
    let response: HttpAnswer;
    try {
      ({ answer: response } = await this.http.request("/healthz", {
        method: "GET",
        timeoutMs: SILENCE_MS,
      }));
    } catch (error) {
      throw new ServerUnreachableError(this.http.servers.join(","), error);
    }
    const date = response.headers.date;
    return { ok: isOk(response.status), serverDate: date ? new Date(date) : null };
  }

  private async call<T extends z.ZodType>(
    method: "GET" | "POST" | "DELETE",
    path: string,
    schema: T,
    body?: unknown,
    waitSeconds = 0,
  ): Promise<z.infer<T>> {
    let response: HttpAnswer;
    try {
      ({ answer: response } = await this.http.request(`${API_PREFIX}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs: waitSeconds * 1000 + SILENCE_MS,
      }));
    } catch (error) {
      throw new ServerUnreachableError(this.http.servers.join(","), error);
    }
    const text = response.text;
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new LabrunApiError(
        response.status,
        "BAD_RESPONSE",
        `the server sent non-JSON: ${text.slice(0, 200)}`,
      );
    }
    if (!isOk(response.status)) throw refusalOf(response.status, json);
    return schema.parse(json);
  }
}

/** A non-2xx answer as the LabrunApiError its error body (`{error:{code,message}}`) names. */
export function refusalOf(status: number, body: unknown): LabrunApiError {
  const error = (body as { error?: { code?: string; message?: string; details?: unknown } })?.error;
  return new LabrunApiError(
    status,
    error?.code ?? "HTTP_ERROR",
    error?.message ?? `the server answered HTTP ${status}`,
    error?.details,
  );
}

/** `?a=1&b=2` of the defined values; "" when there are none. */
function queryString(query: Record<string, unknown>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  return params.size > 0 ? `?${params}` : "";
}

const isOk = (status: number) => status >= 200 && status < 300;

/** `ECONNREFUSED`, `ENOTFOUND`, … (Node's error code; a wrapped `cause`'s when there is one). */
function describeCause(error: unknown): string {
  const { cause, code } = error as { cause?: { code?: string; message?: string }; code?: string };
  return (
    cause?.code ??
    cause?.message ??
    code ??
    (error instanceof Error ? error.message : String(error))
  );
}
