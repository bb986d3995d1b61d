import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Outcome } from "../protocol/index.js";
import { createApp } from "./app.js";
import { requireRole } from "./auth.js";
import { CoordinatorConfig } from "./config.js";
import { startCoordinator } from "./main.js";
import { Notifier } from "./notifier.js";
import { Store } from "./store/store.js";
import { loadOrCreateTokens } from "./tokens.js";

const OK: Outcome = { ok: true, result: 42, logs: "", stats: { durationMs: 5 } };
const FAILED: Outcome = {
  ok: false,
  error: { code: "RUNTIME_ERROR", message: "boom" },
  logs: "",
  stats: { durationMs: 5 },
};

const stores: Store[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
});

/** The app over a store in a temp dir, with a clock the test moves by hand. */
function setup(dataDir = mkdtempSync(join(tmpdir(), "labrun-coord-"))) {
  const config = CoordinatorConfig.parse({ dataDir, leaseTtlMs: 1000, maxAttempts: 2 });
  const store = new Store(dataDir, config);
  stores.push(store);
  const { tokens } = loadOrCreateTokens(dataDir);
  const notifier = new Notifier();
  const time = { now: 1_700_000_000_000 };
  const app = createApp({
    store,
    notifier,
    tokens,
    config,
    logger: pino({ level: "silent" }),
    clock: () => time.now,
    auth: (...roles) => requireRole(tokens, store, ...roles),
    closing: () => false,
  });
  const call = async (method: string, path: string, token: string | undefined, body?: unknown) => {
    const response = await app.request(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        "content-type": "application/json",
      },
      ...(body === undefined
        ? {}
        : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON answers field by field
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  const register = async (name = "node-1", slots = 2) => {
    const { body } = await call("POST", "/v1/agents/register", tokens.agent, {
      name,
      hostname: "host",
      slots,
      version: "test",
    });
    const agent = body as { agentId: string; token: string };
    return {
      ...agent,
      lease: (free = 1, waitMs = 0) =>
        call("POST", `/v1/agents/${agent.agentId}/lease`, agent.token, { free, waitMs }),
      heartbeat: (running: string[]) =>
        call("POST", `/v1/agents/${agent.agentId}/heartbeat`, agent.token, { running }),
      result: (leaseId: string, outcome: Outcome) =>
        call("POST", `/v1/agents/${agent.agentId}/results`, agent.token, { leaseId, outcome }),
    };
  };
  const submit = async (body: unknown = { source: "exports.main = () => 42" }) =>
    call("POST", "/v1/jobs", tokens.client, body);
  const job = async (id: string) => (await call("GET", `/v1/jobs/${id}`, tokens.client)).body;
  return { app, call, register, submit, job, tokens, time, store, dataDir };
}

describe("jobs through the agent routes", () => {
  it("runs submit → lease → heartbeat → result to succeeded", async () => {
    const c = setup();
    const submitted = await c.submit({ source: "exports.main = () => 42", input: { a: 1 } });
    expect(submitted.status).toBe(201);
    expect(submitted.body.state).toBe("queued");
    const agent = await c.register();
    const leased = await agent.lease(2);
    expect(leased.body.jobs).toHaveLength(1);
    const [leasedJob] = leased.body.jobs;
    expect(leasedJob.spec).toMatchObject({
      filename: "main.js",
      input: { a: 1 },
      limits: { timeoutMs: 10_000 },
    });
    expect((await c.job(submitted.body.id)).state).toBe("leased");
    expect((await agent.heartbeat([leasedJob.leaseId])).body.cancel).toEqual([]);
    expect((await c.job(submitted.body.id)).state).toBe("running");
    expect((await agent.result(leasedJob.leaseId, OK)).status).toBe(200);
    const done = await c.job(submitted.body.id);
    expect(done).toMatchObject({ state: "succeeded", attempts: 1, node: "node-1", outcome: OK });
    expect(done.finishedAt).toBeTruthy();
  });

  it("records a failed outcome as failed", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    await agent.result(leased.leaseId, FAILED);
    expect(await c.job(body.id)).toMatchObject({ state: "failed", outcome: FAILED });
  });

  it("wakes a waiting lease request as soon as a job is submitted", async () => {
    const c = setup();
    const agent = await c.register();
    const started = Date.now();
    const pending = agent.lease(1, 5000);
    setTimeout(() => void c.submit(), 50);
    const leased = await pending;
    expect(leased.body.jobs).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("answers GET ?wait as soon as the job ends", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    const started = Date.now();
    const waiting = c.call("GET", `/v1/jobs/${body.id}?wait=10`, c.tokens.client);
    setTimeout(() => void agent.result(leased.leaseId, OK), 50);
    expect((await waiting).body.state).toBe("succeeded");
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("requeues an expired lease, then fails with NODE_LOST past maxAttempts", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const first = (await agent.lease()).body.jobs[0];
    c.time.now += 1001;
    expect(c.store.expireLeases(c.time.now).requeued).toEqual([body.id]);
    expect(await c.job(body.id)).toMatchObject({ state: "queued", attempts: 1 });
    // The old lease is dead: its result is refused and its heartbeat says stop.
    expect((await agent.result(first.leaseId, OK)).status).toBe(409);
    expect((await agent.heartbeat([first.leaseId])).body.cancel).toEqual([first.leaseId]);
    const second = (await agent.lease()).body.jobs[0];
    expect(second.attempt).toBe(2);
    c.time.now += 1001;
    expect(c.store.expireLeases(c.time.now).failed).toEqual([body.id]);
    const lost = await c.job(body.id);
    expect(lost.state).toBe("failed");
    expect(lost.outcome.error.code).toBe("NODE_LOST");
  });

  it("keeps a lease alive while heartbeats renew it", async () => {
    const c = setup();
    await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    for (let i = 0; i < 5; i++) {
      c.time.now += 600;
      await agent.heartbeat([leased.leaseId]);
      expect(c.store.expireLeases(c.time.now).requeued).toEqual([]);
    }
  });

  it("refuses a result for another agent's lease (409) and changes nothing", async () => {
    const c = setup();
    const { body } = await c.submit();
    const owner = await c.register("owner");
    const other = await c.register("other");
    const [leased] = (await owner.lease()).body.jobs;
    const refused = await other.result(leased.leaseId, FAILED);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("STALE_LEASE");
    expect((await c.job(body.id)).state).toBe("leased");
  });

  it("accepts a duplicate result for the current lease once, without change", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    expect((await agent.result(leased.leaseId, OK)).status).toBe(200);
    const before = await c.job(body.id);
    expect((await agent.result(leased.leaseId, FAILED)).status).toBe(200);
    expect(await c.job(body.id)).toEqual(before);
  });

  it("cancels a queued job at once", async () => {
    const c = setup();
    const { body } = await c.submit();
    const cancelled = await c.call("POST", `/v1/jobs/${body.id}/cancel`, c.tokens.client);
    expect(cancelled.body.state).toBe("cancelled");
    const agent = await c.register();
    expect((await agent.lease()).body.jobs).toEqual([]);
  });

  it("cancels a leased job: final at once, the agent told on heartbeat, its late result refused", async () => {
    const c = setup();
    const { body } = await c.submit();
    const agent = await c.register();
    const [leased] = (await agent.lease()).body.jobs;
    const cancelled = await c.call("POST", `/v1/jobs/${body.id}/cancel`, c.tokens.client);
    expect(cancelled.body).toMatchObject({
      state: "cancelled",
      outcome: { error: { code: "CANCELLED" } },
    });
    expect((await agent.heartbeat([leased.leaseId])).body.cancel).toEqual([leased.leaseId]);
    expect((await agent.result(leased.leaseId, OK)).status).toBe(409);
    expect((await c.job(body.id)).state).toBe("cancelled");
  });

  it("lists nodes with slots, running jobs, and lost after the TTL", async () => {
    const c = setup();
    await c.submit();
    const agent = await c.register("busy", 3);
    await agent.lease();
    const list = async () => (await c.call("GET", "/v1/admin/nodes", c.tokens.admin)).body.nodes;
    expect(await list()).toMatchObject([{ name: "busy", slots: 3, running: 1, state: "ready" }]);
    c.time.now += 5000;
    expect((await list())[0].state).toBe("lost");
  });

  it("pages through jobs newest first, with a state filter", async () => {
    const c = setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await c.submit()).body.id);
    const first = (await c.call("GET", "/v1/jobs?limit=2", c.tokens.client)).body;
    expect(first.jobs.map((j: { id: string }) => j.id)).toEqual([ids[4], ids[3]]);
    const second = (
      await c.call("GET", `/v1/jobs?limit=2&cursor=${first.nextCursor}`, c.tokens.client)
    ).body;
    expect(second.jobs.map((j: { id: string }) => j.id)).toEqual([ids[2], ids[1]]);
    await c.call("POST", `/v1/jobs/${ids[0]}/cancel`, c.tokens.client);
    const cancelled = (await c.call("GET", "/v1/jobs?state=cancelled", c.tokens.client)).body;
    expect(cancelled.jobs.map((j: { id: string }) => j.id)).toEqual([ids[0]]);
    const bad = await c.call("GET", "/v1/jobs?cursor=!!", c.tokens.client);
    expect(bad.status).toBe(400);
  });
});

describe("validation and limits", () => {
  it("answers 413 to an input over 1 MiB and queues nothing", async () => {
    const c = setup();
    const big = await c.submit({
      source: "exports.main=()=>1",
      input: "x".repeat(1024 * 1024 + 10),
    });
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe("PAYLOAD_TOO_LARGE");
    expect((await c.call("GET", "/v1/jobs", c.tokens.client)).body.jobs).toEqual([]);
  });

  it("answers 413 to a body over the route's limit", async () => {
    const c = setup();
    const response = await c.submit({ source: "x".repeat(5 * 1024 * 1024) });
    expect(response.status).toBe(413);
  });

  it("answers 404 NOT_FOUND in JSON for an unknown route", async () => {
    const c = setup();
    const response = await c.call("GET", "/v1/nothing", c.tokens.client);
    expect(response.status).toBe(404);
    expect(response.body.error.code).toBe("NOT_FOUND");
  });

  it("forbids an agent token on another agent's routes", async () => {
    const c = setup();
    const a = await c.register("a");
    const b = await c.register("b");
    const response = await c.call("POST", `/v1/agents/${b.agentId}/lease`, a.token, {
      free: 1,
      waitMs: 0,
    });
    expect(response.status).toBe(403);
  });
});

describe("durability", () => {
  it("keeps a submitted job across closing and reopening the store, with the same tokens", async () => {
    const first = setup();
    const { body } = await first.submit();
    first.store.close();
    stores.splice(stores.indexOf(first.store), 1);
    const second = setup(first.dataDir);
    expect(second.tokens).toEqual(first.tokens);
    expect((await second.job(body.id)).state).toBe("queued");
    expect(statSync(join(first.dataDir, "tokens.json")).mode & 0o777).toBe(0o600);
  });

  it("serves /healthz on a real port and closes cleanly", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "labrun-coord-"));
    const running = await startCoordinator({ dataDir, port: 0 }, pino({ level: "silent" }));
    const response = await fetch(`${running.url}/healthz`);
    expect(await response.json()).toEqual({ ok: true });
    await running.close();
    await expect(fetch(`${running.url}/healthz`)).rejects.toThrow();
  });
});
