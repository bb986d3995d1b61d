import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  ApiErrorBody,
  ClusterStats,
  DEFAULT_LIMITS,
  Job,
  LeaseResponse,
  MAX_INPUT_BYTES,
  type Outcome,
} from "../protocol/index.js";
import { createApp } from "./app.js";
import { BODY_LIMITS } from "./bodyLimits.js";
import { Notifier } from "./notifier.js";
import type { Store } from "./store/index.js";
import { sweepLeases } from "./sweeper.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const OK: Outcome = { ok: true, result: 42, logs: "", stats: { durationMs: 5 } };
const FAILED: Outcome = {
  ok: false,
  error: { code: "RUNTIME_ERROR", message: "boom" },
  logs: "oops\n",
  stats: { durationMs: 5 },
};
const PROGRAM = { source: "exports.main = () => 42" };
const silent = pino({ level: "silent" });

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers field by field
type Json = Record<string, any>;

/** The app over a store in a temp dir, with a clock the test moves by hand. */
function setup(
  wrapStore: (store: Store) => Store = (store) => store,
  settings: Parameters<typeof openTempCoordinator>[1] = {},
) {
  const { config, store, tokens, close } = openTempCoordinator("app", {
    leaseTtlMs: 1000,
    heartbeatMs: 200,
    maxAttempts: 2,
    ...settings,
  });
  cleanups.push(close);
  const notifier = new Notifier();
  const time = { now: 1_700_000_000_000 };
  const app = createApp({
    store: wrapStore(store),
    notifier,
    tokens,
    config,
    logger: silent,
    clock: () => time.now,
  });

  const call = async (
    method: string,
    path: string,
    token: string | undefined,
    body?: unknown,
    init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
  ) => {
    const response = await app.request(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...init.headers,
      },
      ...(body === undefined
        ? {}
        : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as Json };
  };

  const register = async (name = "node-1", slots = 2) => {
    const registered = await call("POST", "/v1/agents/register", tokens.agent, {
      name,
      hostname: "lab-host",
      slots,
      version: "test",
    });
    expect(registered.status).toBe(200);
    const { agentId, token } = registered.body as { agentId: string; token: string };
    return {
      agentId,
      token,
      lease: (free = 1, waitMs = 0, signal?: AbortSignal) =>
        call(
          "POST",
          `/v1/agents/${agentId}/lease`,
          token,
          { free, waitMs },
          signal ? { signal } : {},
        ),
      heartbeat: (running: string[]) =>
        call("POST", `/v1/agents/${agentId}/heartbeat`, token, { running }),
      result: (leaseId: string, outcome: Outcome) =>
        call("POST", `/v1/agents/${agentId}/results`, token, { leaseId, outcome }),
    };
  };

  const submit = (body: unknown = PROGRAM, token: string = tokens.client) =>
    call("POST", "/v1/jobs", token, body);
  const job = async (id: string) => (await call("GET", `/v1/jobs/${id}`, tokens.client)).body;
  const sweep = () => sweepLeases(store, notifier, silent, time.now);
  return { app, call, register, submit, job, sweep, tokens, time, store, notifier };
}

/** Resolves after `ms` on the real clock (for long-poll timing only). */
const later = (ms: number, action: () => unknown) =>
  new Promise<void>((resolve) =>
    setTimeout(() => {
      void action();
      resolve();
    }, ms),
  );

describe("submit and read", () => {
  it("answers 201 {id, state} and the job reads back as queued", async () => {
    const c = setup();
    const submitted = await c.submit({ ...PROGRAM, input: { a: 2 }, limits: { timeoutMs: 500 } });
    expect(submitted.status).toBe(201);
    expect(submitted.body).toEqual({ id: expect.stringMatching(/^j_/), state: "queued" });
    const job = Job.parse(await c.job(submitted.body.id));
    expect(job).toMatchObject({
      state: "queued",
      attempts: 0,
      filename: "main.js",
      limits: { timeoutMs: 500, memoryMb: 256, cpus: 1 },
    });
  });

  it("fills every limit the client leaves out from the lab's defaults, then the protocol's", async () => {
    const c = setup(undefined, { defaultLimits: { timeoutMs: 30_000, pids: 128 } });
    const submitted = await c.submit({ ...PROGRAM, limits: { pids: 32, logBytes: 4096 } });
    expect(Job.parse(await c.job(submitted.body.id)).limits).toEqual({
      ...DEFAULT_LIMITS,
      timeoutMs: 30_000,
      pids: 32,
      logBytes: 4096,
    });
    const agent = await c.register();
    const registered = await c.call("POST", "/v1/agents/register", c.tokens.agent, {
      name: "node-2",
      hostname: "lab-host",
      slots: 1,
      version: "test",
    });
    expect(registered.body.defaultLimits).toEqual({
      ...DEFAULT_LIMITS,
      timeoutMs: 30_000,
      pids: 128,
    });
    const leased = LeaseResponse.parse((await agent.lease(1)).body);
    expect(leased.jobs[0]?.spec.limits).toMatchObject({
      timeoutMs: 30_000,
      pids: 32,
      logBytes: 4096,
    });
  });

  it("answers 400 VALIDATION_ERROR to a limit out of range or unknown, queueing nothing", async () => {
    const c = setup();
    for (const limits of [{ pids: 1 }, { tmpfsMb: 0 }, { logBytes: 1e9 }, { swap: 1 }]) {
      const refused = await c.submit({ ...PROGRAM, limits });
      expect(refused.status, JSON.stringify(limits)).toBe(400);
      expect(refused.body.error.code).toBe("VALIDATION_ERROR");
    }
    expect((await c.call("GET", "/v1/jobs", c.tokens.client)).body.jobs).toEqual([]);
  });

  it("lets the admin token do what a client may", async () => {
    const c = setup();
    expect((await c.submit(PROGRAM, c.tokens.admin)).status).toBe(201);
  });

  it("answers 404 NOT_FOUND for an unknown job and a bad job id", async () => {
    const c = setup();
    const unknown = await c.call("GET", "/v1/jobs/j_doesnotexist", c.tokens.client);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("NOT_FOUND");
    const bad = await c.call("GET", "/v1/jobs/not%20an%20id", c.tokens.client);
    expect(bad.status).toBe(400);
  });
});

describe("validation", () => {
  it.each([
    ["a missing source", {}],
    ["a source of the wrong type", { source: 42 }],
    ["an unknown field", { ...PROGRAM, extra: true }],
    ["a bad file name", { ...PROGRAM, filename: "../etc/passwd.js" }],
    ["a file name of the wrong kind", { ...PROGRAM, filename: "prog.rb" }],
    ["a python job with a .js file name", { ...PROGRAM, filename: "prog.js", runtime: "python" }],
    ["a negative timeout", { ...PROGRAM, limits: { timeoutMs: -1 } }],
    ["an empty program", { source: "" }],
    ["not JSON at all", "{nope"],
    ["a JSON body that is not an object", "[1, 2]"],
    ["an empty body", ""],
  ])("answers 400 VALIDATION_ERROR to %s", async (_what, body) => {
    const c = setup();
    const response = await c.submit(body);
    expect(response.status).toBe(400);
    const { error } = ApiErrorBody.parse(response.body);
    expect(error.code).toBe("VALIDATION_ERROR");
    expect(error.message).not.toMatch(/\n\s+at /);
  });

  it("puts the zod issues in details", async () => {
    const c = setup();
    const response = await c.submit({ source: 42, extra: 1 });
    expect(response.body.error.details).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: ["source"], code: "invalid_type" }),
        expect.objectContaining({ code: "unrecognized_keys" }),
      ]),
    );
  });

  it("answers 415 UNSUPPORTED_MEDIA_TYPE to a body that is not sent as JSON", async () => {
    const c = setup();
    const response = await c.call("POST", "/v1/jobs", c.tokens.client, JSON.stringify(PROGRAM), {
      headers: { "content-type": "text/plain" },
    });
    expect(response.status).toBe(415);
    expect(response.body.error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("takes a JSON body sent without a content type, or with parameters", async () => {
    const c = setup();
    const bare = await c.app.request("/v1/jobs", {
      method: "POST",
      headers: { authorization: `Bearer ${c.tokens.client}` },
      body: new TextEncoder().encode(JSON.stringify(PROGRAM)),
    });
    expect(bare.headers.get("content-type")).toMatch(/json/);
    expect(bare.status).toBe(201);
    const withCharset = await c.call("POST", "/v1/jobs", c.tokens.client, PROGRAM, {
      headers: { "content-type": "application/json; charset=utf-8" },
    });
    expect(withCharset.status).toBe(201);
  });

  it("answers 400 to a malformed lease body from an agent", async () => {
    const c = setup();
    const agent = await c.register();
    const response = await c.call("POST", `/v1/agents/${agent.agentId}/lease`, agent.token, {
      free: "lots",
    });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe("VALIDATION_ERROR");
  });

  it("answers 400 to a bad list query", async () => {
    const c = setup();
    for (const query of ["state=bogus", "limit=0", "limit=x", "cursor=!!"]) {
      const response = await c.call("GET", `/v1/jobs?${query}`, c.tokens.client);
      expect(response.status, query).toBe(400);
      expect(response.body.error.code).toBe("VALIDATION_ERROR");
    }
  });
});

describe("size limits", () => {
  it("answers 413 to an input over 1 MiB of JSON and queues nothing", async () => {
    const c = setup();
    const big = await c.submit({ ...PROGRAM, input: "x".repeat(1024 * 1024) });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("PAYLOAD_TOO_LARGE");
    expect((await c.call("GET", "/v1/jobs", c.tokens.client)).body.jobs).toEqual([]);
  });

  it("takes the input size the coordinator is configured for (--max-input)", async () => {
    const c = setup(undefined, { maxInputBytes: 4096 });
    const big = await c.submit({ ...PROGRAM, input: "x".repeat(5000) });
    expect(big.status).toBe(413);
    expect(big.body.error.message).toContain("4096 bytes");
    expect((await c.submit({ ...PROGRAM, input: "x".repeat(4000) })).status).toBe(201);
  });

  it("answers 413 with its size to a program over --max-program, in either form", async () => {
    const c = setup(undefined, { maxProgramBytes: 4096 });
    const big = await c.submit({ source: `//${"x".repeat(4096)}` });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("PAYLOAD_TOO_LARGE");
    expect(big.body.error.message).toContain("4098 bytes");
    const files = [
      { path: "main.js", content: "exports.main = () => 1;" },
      { path: "lib/big.js", content: `//${"y".repeat(4096)}` },
    ];
    const many = await c.submit({ files, entry: "main.js" });
    expect(many.status).toBe(413);
    expect(many.body.error.details).toEqual({ bytes: 4098 + 23, maxBytes: 4096 });
  });

  it("answers 413 to a body over the route's limit, with or without a content length", async () => {
    const c = setup(undefined, { maxProgramBytes: 1024 * 1024 });
    const huge = JSON.stringify({
      source: "x".repeat(BODY_LIMITS.submit(1024 * 1024, MAX_INPUT_BYTES)),
    });
    const withLength = await c.call("POST", "/v1/jobs", c.tokens.client, huge, {
      headers: { "content-length": String(Buffer.byteLength(huge)) },
    });
    expect(withLength.status).toBe(413);
    expect(withLength.body.error.code).toBe("PAYLOAD_TOO_LARGE");
    const streamed = await c.call("POST", "/v1/jobs", c.tokens.client, huge);
    expect(streamed.status).toBe(413);
  });

  it("limits agent bodies to 64 KiB except results", async () => {
    const c = setup();
    const agent = await c.register();
    const running = Array.from({ length: 1024 }, (_, i) => `l_${"x".repeat(60)}${i}`);
    const heartbeat = await agent.heartbeat(running);
    expect(heartbeat.status).toBe(413);
    // A 2 MB result is fine (refused only because the lease is unknown).
    const result = await agent.result("l_unknown", { ...OK, logs: "y".repeat(2_000_000) });
    expect(result.status).toBe(409);
  });
});

describe("body size limits per route", () => {
  type Setup = ReturnType<typeof setup>;
  type Agent = Awaited<ReturnType<Setup["register"]>>;
  interface LimitCase {
    route: string;
    method: string;
    limit: number;
    /** Status of a valid request whose body is exactly at the limit. */
    ok: number;
    path: (c: Setup, agent: Agent) => string | Promise<string>;
    token: (c: Setup, agent: Agent) => string;
    body: (c: Setup, agent: Agent) => unknown;
    /** Coordinator settings the route's limit follows. */
    settings?: Parameters<typeof setup>[1];
  }
  const cases: LimitCase[] = [
    {
      route: "POST /v1/jobs",
      method: "POST",
      // At --max-program 1 MiB: the default's ~57 MiB body takes too long here.
      limit: BODY_LIMITS.submit(1024 * 1024, MAX_INPUT_BYTES),
      settings: { maxProgramBytes: 1024 * 1024 },
      ok: 201,
      path: () => "/v1/jobs",
      token: (c) => c.tokens.client,
      body: () => PROGRAM,
    },
    {
      route: "POST /v1/jobs/:id/cancel",
      method: "POST",
      limit: BODY_LIMITS.small,
      ok: 200,
      path: async (c) => `/v1/jobs/${(await c.submit()).body.id}/cancel`,
      token: (c) => c.tokens.client,
      body: () => ({}),
    },
    {
      route: "POST /v1/agents/register",
      method: "POST",
      limit: BODY_LIMITS.small,
      ok: 200,
      path: () => "/v1/agents/register",
      token: (c) => c.tokens.agent,
      body: () => ({ name: "n", hostname: "h", slots: 1, version: "v" }),
    },
    {
      route: "POST /v1/agents/:id/lease",
      method: "POST",
      limit: BODY_LIMITS.small,
      ok: 200,
      path: (_, agent) => `/v1/agents/${agent.agentId}/lease`,
      token: (_, agent) => agent.token,
      body: () => ({ free: 0, waitMs: 0 }),
    },
    {
      route: "POST /v1/agents/:id/heartbeat",
      method: "POST",
      limit: BODY_LIMITS.small,
      ok: 200,
      path: (_, agent) => `/v1/agents/${agent.agentId}/heartbeat`,
      token: (_, agent) => agent.token,
      body: () => ({ running: [] }),
    },
    {
      route: "POST /v1/agents/:id/results",
      method: "POST",
      limit: BODY_LIMITS.result,
      ok: 200,
      path: (_, agent) => `/v1/agents/${agent.agentId}/results`,
      token: (_, agent) => agent.token,
      body: async (c: Setup, agent: Agent) => {
        await c.submit();
        const [leased] = (await agent.lease()).body.jobs;
        return { leaseId: leased.leaseId, outcome: OK };
      },
    },
    ...(["drain", "resume"] as const).map(
      (verb): LimitCase => ({
        route: `POST /v1/admin/nodes/:id/${verb}`,
        method: "POST",
        limit: BODY_LIMITS.small,
        ok: 200,
        path: (_, agent) => `/v1/admin/nodes/${agent.agentId}/${verb}`,
        token: (c) => c.tokens.admin,
        body: () => ({}),
      }),
    ),
    {
      route: "DELETE /v1/admin/nodes/:id",
      method: "DELETE",
      limit: BODY_LIMITS.small,
      ok: 204,
      path: (_, agent) => `/v1/admin/nodes/${agent.agentId}`,
      token: (c) => c.tokens.admin,
      body: () => ({}),
    },
  ];
  /** Valid JSON of exactly `bytes` bytes: trailing whitespace is allowed JSON. */
  const padded = (value: unknown, bytes: number) => {
    const text = JSON.stringify(value);
    return text + " ".repeat(bytes - Buffer.byteLength(text));
  };

  it.each(cases)("$route takes $limit bytes and answers 413 to one more", async (limitCase) => {
    const c = setup(undefined, limitCase.settings);
    const agent = await c.register();
    const send = async (bytes: number, withLength: boolean) => {
      const body = padded(await limitCase.body(c, agent), bytes);
      const headers: Record<string, string> = withLength ? { "content-length": String(bytes) } : {};
      const path = await limitCase.path(c, agent);
      return c.call(limitCase.method, path, limitCase.token(c, agent), body, { headers });
    };
    expect((await send(limitCase.limit, false)).status).toBe(limitCase.ok);
    for (const withLength of [true, false]) {
      const over = await send(limitCase.limit + 1, withLength);
      expect(over.status, `content-length: ${withLength}`).toBe(413);
      expect(over.body.error.code).toBe("PAYLOAD_TOO_LARGE");
      expect(over.body.error.message).toContain(String(limitCase.limit));
    }
  });

  it("takes a program at --max-program whose every byte JSON escapes to six, with a 1 MiB input", async () => {
    // Was 413 under a 4 MiB body limit, though the program was within the cap.
    const maxProgramBytes = 1024 * 1024;
    const c = setup(undefined, { maxProgramBytes });
    const source = "\u0001".repeat(maxProgramBytes);
    const input = "\u0002".repeat(Math.floor(MAX_INPUT_BYTES / 6) - 2);
    const body = JSON.stringify({ source, input });
    expect(Buffer.byteLength(body)).toBeGreaterThan(6 * maxProgramBytes);
    const submitted = await c.submit(body);
    expect(submitted.status).toBe(201);
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    expect(leased.spec.source).toBe(source);
  });

  it("takes the agent's largest result: 8 MiB of result and 64 KiB of logs that escape sixfold", async () => {
    const c = setup();
    await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    const outcome: Outcome = {
      ok: true,
      result: "r".repeat(8 * 1024 * 1024 - 2),
      logs: "\u0000".repeat(64 * 1024),
      stats: { durationMs: 1, logBytes: 64 * 1024 },
    };
    expect((await agent.result(leased.leaseId, outcome)).status).toBe(200);
  });
});

describe("auth", () => {
  it("answers 401 UNAUTHORIZED without a token, with a wrong one, or a malformed header", async () => {
    const c = setup();
    const headerSets: Record<string, string>[] = [
      {},
      { authorization: "Bearer nope" },
      { authorization: "Basic abc" },
      { authorization: "Bearer" },
    ];
    for (const headers of headerSets) {
      const response = await c.call("GET", "/v1/jobs", undefined, undefined, { headers });
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe("UNAUTHORIZED");
    }
  });

  it("forbids agent and join tokens on the job routes (403)", async () => {
    const c = setup();
    const agent = await c.register();
    for (const token of [agent.token, c.tokens.agent]) {
      const response = await c.submit(PROGRAM, token);
      expect(response.status).toBe(403);
      expect(response.body.error.code).toBe("FORBIDDEN");
      expect((await c.call("GET", "/v1/jobs", token)).status).toBe(403);
    }
  });

  it("forbids a client token on the admin and agent routes (403)", async () => {
    const c = setup();
    const agent = await c.register();
    expect((await c.call("GET", "/v1/admin/nodes", c.tokens.client)).status).toBe(403);
    const lease = await c.call("POST", `/v1/agents/${agent.agentId}/lease`, c.tokens.client, {
      free: 1,
      waitMs: 0,
    });
    expect(lease.status).toBe(403);
    const register = await c.call("POST", "/v1/agents/register", c.tokens.client, {
      name: "x",
      hostname: "h",
      slots: 1,
      version: "v",
    });
    expect(register.status).toBe(403);
  });

  it("forbids an agent's token on another agent's routes (403)", async () => {
    const c = setup();
    const a = await c.register("a");
    const b = await c.register("b");
    const response = await c.call("POST", `/v1/agents/${b.agentId}/heartbeat`, a.token, {
      running: [],
    });
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe("FORBIDDEN");
  });

  it("serves /healthz and /readyz without a token", async () => {
    const c = setup();
    expect(await c.call("GET", "/healthz", undefined)).toEqual({ status: 200, body: { ok: true } });
    expect(await c.call("GET", "/readyz", undefined)).toEqual({ status: 200, body: { ok: true } });
    c.notifier.close();
    expect((await c.call("GET", "/readyz", undefined)).status).toBe(503);
  });

  it("answers 404 NOT_FOUND in JSON for an unknown route", async () => {
    const c = setup();
    const response = await c.call("GET", "/v2/nothing", c.tokens.client);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("NOT_FOUND");
  });
});

describe("a job's life through the agent routes", () => {
  it("runs register → lease → heartbeat → result to succeeded", async () => {
    const c = setup();
    const submitted = await c.submit({ ...PROGRAM, input: { a: 1 } });
    const agent = await c.register();
    const leased = LeaseResponse.parse((await agent.lease(2)).body);
    expect(leased.jobs).toHaveLength(1);
    const [leasedJob] = leased.jobs;
    expect(leasedJob).toMatchObject({
      id: submitted.body.id,
      attempt: 1,
      spec: { source: PROGRAM.source, filename: "main.js", input: { a: 1 } },
    });
    expect((await c.job(submitted.body.id)).state).toBe("leased");
    c.time.now += 100;
    expect((await agent.heartbeat([leasedJob?.leaseId ?? ""])).body).toEqual({ cancel: [] });
    expect((await c.job(submitted.body.id)).state).toBe("running");
    c.time.now += 100;
    expect(await agent.result(leasedJob?.leaseId ?? "", OK)).toEqual({
      status: 200,
      body: { accepted: true },
    });
    const done = Job.parse(await c.job(submitted.body.id));
    expect(done).toMatchObject({ state: "succeeded", attempts: 1, node: "node-1", outcome: OK });
    expect(Date.parse(done.finishedAt ?? "") - Date.parse(done.startedAt ?? "")).toBe(100);
  });

  it("records a failed outcome as failed", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    await agent.result(leased.leaseId, FAILED);
    expect(await c.job(body.id)).toMatchObject({ state: "failed", outcome: FAILED });
  });

  it("refuses a stale lease's result with 409 STALE_LEASE and changes nothing", async () => {
    const c = setup();
    const { body } = await c.submit();
    const owner = await c.register("owner");
    const other = await c.register("other");
    const [leased] = (await owner.lease()).body.jobs;
    const before = await c.job(body.id);
    for (const [agent, leaseId] of [
      [other, leased.leaseId],
      [owner, "l_not_a_lease"],
    ] as const) {
      const refused = await agent.result(leaseId, FAILED);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("STALE_LEASE");
    }
    expect(await c.job(body.id)).toEqual(before);
  });

  it("accepts a duplicate result for the current lease once, idempotently", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    expect((await agent.result(leased.leaseId, OK)).body).toEqual({ accepted: true });
    const before = await c.job(body.id);
    c.time.now += 500;
    expect((await agent.result(leased.leaseId, FAILED)).body).toEqual({ accepted: true });
    expect(await c.job(body.id)).toEqual(before);
  });

  it("requeues an expired lease with attempts + 1, then fails with NODE_LOST past maxAttempts", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const first = (await agent.lease()).body.jobs[0];
    c.time.now += 1001;
    await c.sweep();
    expect(await c.job(body.id)).toMatchObject({ state: "queued", attempts: 1 });
    expect((await agent.result(first.leaseId, OK)).status).toBe(409);
    expect((await agent.heartbeat([first.leaseId])).body.cancel).toEqual([first.leaseId]);
    const second = (await agent.lease()).body.jobs[0];
    expect(second.attempt).toBe(2);
    c.time.now += 1001;
    await c.sweep();
    const lost = await c.job(body.id);
    expect(lost).toMatchObject({
      state: "failed",
      attempts: 2,
      outcome: { ok: false, error: { code: "NODE_LOST" } },
    });
  });
});

describe("long-polls", () => {
  it("wakes a waiting lease request as soon as a job is submitted", async () => {
    const c = setup();
    const agent = await c.register();
    const started = Date.now();
    const pending = agent.lease(1, 5_000);
    await later(50, () => c.submit());
    const leased = await pending;
    expect(leased.body.jobs).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(c.notifier.waiting.lease).toBe(0);
  });

  it("wakes a waiting lease request when the sweeper queues a job again", async () => {
    const c = setup();
    await c.submit();
    const lost = await c.register("lost");
    const healthy = await c.register("healthy");
    await lost.lease();
    const started = Date.now();
    const pending = healthy.lease(1, 5_000);
    c.time.now += 1001;
    await later(50, () => c.sweep());
    expect((await pending).body.jobs[0]).toMatchObject({ attempt: 2 });
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("answers a lease with free = 0 at once, and one with no work after waitMs", async () => {
    const c = setup();
    const agent = await c.register();
    let started = Date.now();
    expect((await agent.lease(0, 5_000)).body).toEqual({ jobs: [] });
    expect(Date.now() - started).toBeLessThan(500);
    started = Date.now();
    expect((await agent.lease(1, 100)).body).toEqual({ jobs: [] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(c.notifier.waiting.lease).toBe(0);
  });

  it("drops the waiter of an aborted lease request and leases nothing to it", async () => {
    const c = setup();
    const agent = await c.register();
    const abort = new AbortController();
    const pending = agent.lease(1, 5_000, abort.signal).catch(() => undefined);
    await later(20, () => abort.abort());
    await pending;
    expect(c.notifier.waiting.lease).toBe(0);
    const { body } = await c.submit();
    expect((await c.job(body.id)).state).toBe("queued");
  });

  it("answers GET ?wait as soon as the job ends", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    const started = Date.now();
    const waiting = c.call("GET", `/v1/jobs/${body.id}?wait=10`, c.tokens.client);
    await later(50, () => agent.result(leased.leaseId, OK));
    expect((await waiting).body.state).toBe("succeeded");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(c.notifier.waiting.jobs).toBe(0);
  });

  it("answers GET ?wait with the job as it is when the time is up", async () => {
    const c = setup();
    const { body } = await c.submit();
    const started = Date.now();
    const waited = await c.call("GET", `/v1/jobs/${body.id}?wait=0.1`, c.tokens.client);
    expect(waited.body.state).toBe("queued");
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
  });
});

describe("cancel", () => {
  it("cancels a queued job at once; no agent gets it", async () => {
    const c = setup();
    const { body } = await c.submit();
    const cancelled = await c.call("POST", `/v1/jobs/${body.id}/cancel`, c.tokens.client);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({
      state: "cancelled",
      outcome: { ok: false, error: { code: "CANCELLED", message: "cancelled by a client" } },
    });
    const agent = await c.register();
    expect((await agent.lease()).body.jobs).toEqual([]);
  });

  it("cancels a leased job at once: readers woken, agent told on heartbeat, late result refused", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    const waiting = c.call("GET", `/v1/jobs/${body.id}?wait=10`, c.tokens.client);
    const cancelled = await c.call("POST", `/v1/jobs/${body.id}/cancel`, c.tokens.client);
    expect(cancelled.body.state).toBe("cancelled");
    expect((await waiting).body.state).toBe("cancelled");
    expect((await agent.heartbeat([leased.leaseId])).body).toEqual({ cancel: [leased.leaseId] });
    const late = await agent.result(leased.leaseId, OK);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("STALE_LEASE");
    expect(await c.job(body.id)).toEqual(cancelled.body);
  });

  it("returns a terminal job unchanged", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    await agent.result(leased.leaseId, OK);
    const before = await c.job(body.id);
    const again = await c.call("POST", `/v1/jobs/${body.id}/cancel`, c.tokens.client);
    expect(again).toEqual({ status: 200, body: before });
  });
});

describe("listing", () => {
  it("pages through jobs newest first, with a state filter", async () => {
    const c = setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await c.submit()).body.id);
    const idsOf = (page: Json) => page.jobs.map((job: { id: string }) => job.id);
    const first = (await c.call("GET", "/v1/jobs?limit=2", c.tokens.client)).body;
    expect(idsOf(first)).toEqual([ids[4], ids[3]]);
    const next = `/v1/jobs?limit=2&cursor=${first.nextCursor}`;
    expect(idsOf((await c.call("GET", next, c.tokens.client)).body)).toEqual([ids[2], ids[1]]);
    await c.call("POST", `/v1/jobs/${ids[0]}/cancel`, c.tokens.client);
    const cancelled = (await c.call("GET", "/v1/jobs?state=cancelled", c.tokens.client)).body;
    expect(cancelled).toEqual({ jobs: [expect.objectContaining({ id: ids[0] })] });
  });
});

describe("admin", () => {
  it("lists nodes with slots, running jobs and state, lost after the TTL", async () => {
    const c = setup();
    await c.submit();
    const agent = await c.register("busy", 3);
    await agent.lease();
    const nodes = async () => (await c.call("GET", "/v1/admin/nodes", c.tokens.admin)).body.nodes;
    expect(await nodes()).toMatchObject([
      { id: agent.agentId, name: "busy", slots: 3, running: 1, state: "ready", version: "test" },
    ]);
    c.time.now += 1001;
    expect((await nodes())[0].state).toBe("lost");
  });

  it("answers GET /v1/admin/stats to the admin token: jobs, recent throughput, nodes", async () => {
    const c = setup();
    const agent = await c.register("busy", 3);
    await c.register("idle");
    for (let i = 0; i < 3; i++) await c.submit();
    const [leased] = (await agent.lease(1)).body.jobs;
    expect((await agent.result(leased.leaseId, OK)).status).toBe(200);
    expect((await c.call("GET", "/v1/admin/stats", c.tokens.client)).status).toBe(403);
    expect((await c.call("GET", "/v1/admin/stats", undefined)).status).toBe(401);

    const answer = await c.call("GET", "/v1/admin/stats", c.tokens.admin);
    expect(answer.status).toBe(200);
    expect(ClusterStats.parse(answer.body)).toEqual({
      at: new Date(c.time.now).toISOString(),
      jobs: { queued: 2, leased: 0, running: 0, succeeded: 1, failed: 0, cancelled: 0 },
      finished: { lastMinute: 1, lastHour: 1 },
      nodes: { ready: 2, draining: 0, lost: 0 },
      batches: { active: 0, succeeded: 0, failed: 0, cancelled: 0 },
      batchItems: { queued: 0, leased: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
    });
    c.time.now += 61_000;
    const later = (await c.call("GET", "/v1/admin/stats", c.tokens.admin)).body;
    expect(later.finished).toEqual({ lastMinute: 0, lastHour: 1 });
    expect(later.nodes).toEqual({ ready: 0, draining: 0, lost: 2 });
  });

  it("drains a node (no new leases) and resumes it (a waiting lease wakes)", async () => {
    const c = setup();
    const agent = await c.register();
    const drained = await c.call("POST", `/v1/admin/nodes/${agent.agentId}/drain`, c.tokens.admin);
    expect(drained.body.state).toBe("draining");
    await c.submit();
    const started = Date.now();
    const pending = agent.lease(1, 5_000);
    await later(50, () =>
      c.call("POST", `/v1/admin/nodes/${agent.agentId}/resume`, c.tokens.admin),
    );
    expect((await pending).body.jobs).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(1_000);
    const unknown = await c.call("POST", "/v1/admin/nodes/a_nope/drain", c.tokens.admin);
    expect(unknown.status).toBe(404);
  });

  it("removes a node: its token stops working and its job is queued again", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    await agent.lease();
    const removed = await c.call("DELETE", `/v1/admin/nodes/${agent.agentId}`, c.tokens.admin);
    expect(removed.status).toBe(204);
    expect((await agent.heartbeat([])).status).toBe(401);
    expect((await c.job(body.id)).state).toBe("queued");
  });

  it("lets an agent leave on its own: its leased job is queued again and wakes another agent", async () => {
    const c = setup();
    const { body } = await c.submit();
    const leaving = await c.register("leaving");
    const other = await c.register("other");
    await leaving.lease();
    const waiting = other.lease(1, 5_000);
    const started = Date.now();
    const left = await c.call("DELETE", `/v1/agents/${leaving.agentId}`, leaving.token);
    expect(left.status).toBe(204);
    expect((await waiting).body.jobs.map((j: { id: string }) => j.id)).toEqual([body.id]);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((await leaving.heartbeat([])).status).toBe(401);
    // Another agent's token may not remove it.
    const forbidden = await c.call("DELETE", `/v1/agents/${leaving.agentId}`, other.token);
    expect(forbidden.status).toBe(403);
  });
});

describe("unexpected errors", () => {
  it("answers 500 INTERNAL with a generic message, never the error itself", async () => {
    const c = setup((store) => ({
      ...store,
      listNodes: async () => {
        throw new Error("secret detail at /var/lib/labrun");
      },
    }));
    const response = await c.call("GET", "/v1/admin/nodes", c.tokens.admin);
    expect(response.status).toBe(500);
    expect(response.body.error.code).toBe("INTERNAL");
    expect(JSON.stringify(response.body)).not.toMatch(/secret|\/var\/lib/);
  });
});
