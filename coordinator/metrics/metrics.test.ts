import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { Outcome } from "../../protocol/index.js";
import { createApp } from "../app.js";
import { Notifier } from "../notifier.js";
import { sweepLeases } from "../sweeper.js";
import { openTempCoordinator } from "../test-support/temp-coordinator.js";
import { createMetrics } from "./index.js";

const silent = pino({ level: "silent" });
const PROGRAM = { source: "exports.main = () => 1" };
const OK: Outcome = { ok: true, result: 1, logs: "", stats: { durationMs: 250 } };
const FAILED: Outcome = {
  ok: false,
  error: { code: "RUNTIME_ERROR", message: "boom" },
  logs: "",
  stats: { durationMs: 2_000 },
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An app with its metrics in reach, a hand-moved clock, and helpers to call it. */
function setup() {
  const { config, store, tokens, close } = openTempCoordinator("metrics", {
    leaseTtlMs: 1000,
    heartbeatMs: 200,
    maxAttempts: 1,
  });
  cleanups.push(close);
  const notifier = new Notifier();
  const time = { now: 1_700_000_000_000 };
  const clock = () => time.now;
  const metrics = createMetrics({ store, notifier, clock });
  const app = createApp({ store, notifier, tokens, config, logger: silent, clock, metrics });

  const call = async (method: string, path: string, token?: string, body?: unknown) => {
    const response = await app.request(path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    // biome-ignore lint/suspicious/noExplicitAny: tests read known answers field by field
    const json = (text.startsWith("{") ? JSON.parse(text) : undefined) as any;
    return { status: response.status, text, json, type: response.headers.get("content-type") };
  };
  const submit = async () =>
    (await call("POST", "/v1/jobs", tokens.client, PROGRAM)).json.id as string;
  const register = async (name = "node-1") => {
    const { json } = await call("POST", "/v1/agents/register", tokens.agent, {
      name,
      hostname: "h",
      slots: 4,
      version: "test",
    });
    const { agentId, token } = json as { agentId: string; token: string };
    return {
      agentId,
      token,
      lease: async (free = 1) =>
        (await call("POST", `/v1/agents/${agentId}/lease`, token, { free, waitMs: 0 })).json
          .jobs as { id: string; leaseId: string }[],
      heartbeat: (body: unknown) => call("POST", `/v1/agents/${agentId}/heartbeat`, token, body),
      result: (leaseId: string, outcome: Outcome) =>
        call("POST", `/v1/agents/${agentId}/results`, token, { leaseId, outcome }),
    };
  };
  /** The exposition, as the admin scrapes it. */
  const scrape = async () => {
    const answer = await call("GET", "/metrics", tokens.admin);
    expect(answer.status).toBe(200);
    return parseExposition(answer.text);
  };
  return { app, call, submit, register, scrape, tokens, time, store, notifier, metrics };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (no escapes in labrun's label values). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)) {
      labels[pair[1] as string] = pair[2] as string;
    }
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The one sample of `name` whose labels include `labels`; undefined when none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  const found = samples.filter(
    (sample) =>
      sample.name === name &&
      Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match`);
  return found[0]?.value;
}

describe("GET /metrics", () => {
  it("answers the admin token with Prometheus text, others 401/403", async () => {
    const c = setup();
    expect((await c.call("GET", "/metrics")).status).toBe(401);
    expect((await c.call("GET", "/metrics", c.tokens.client)).status).toBe(403);
    expect((await c.call("GET", "/metrics", c.tokens.agent)).status).toBe(403);
    const answer = await c.call("GET", "/metrics", c.tokens.admin);
    expect(answer.status).toBe(200);
    expect(answer.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(answer.text).toContain("# TYPE labrun_jobs gauge");
    expect(answer.text).toContain("# TYPE labrun_http_request_duration_seconds histogram");
  });

  it("reads jobs and nodes by state from the store at scrape time", async () => {
    const c = setup();
    let samples = await c.scrape();
    expect(sampleValue(samples, "labrun_jobs", { state: "queued" })).toBe(0);
    expect(sampleValue(samples, "labrun_nodes", { state: "ready" })).toBe(0);

    await c.submit();
    await c.submit();
    const cancelled = await c.submit();
    await c.call("POST", `/v1/jobs/${cancelled}/cancel`, c.tokens.client);
    const agent = await c.register("a");
    await c.register("b");
    await agent.lease(1);
    samples = await c.scrape();
    expect(sampleValue(samples, "labrun_jobs", { state: "queued" })).toBe(1);
    expect(sampleValue(samples, "labrun_jobs", { state: "leased" })).toBe(1);
    expect(sampleValue(samples, "labrun_jobs", { state: "cancelled" })).toBe(1);
    expect(sampleValue(samples, "labrun_jobs", { state: "succeeded" })).toBe(0);
    expect(sampleValue(samples, "labrun_nodes", { state: "ready" })).toBe(2);

    c.time.now += 1001; // both silent for longer than the lease TTL
    samples = await c.scrape();
    expect(sampleValue(samples, "labrun_nodes", { state: "ready" })).toBe(0);
    expect(sampleValue(samples, "labrun_nodes", { state: "lost" })).toBe(2);
  });

  it("reads batch items and batches by state at scrape time, apart from single jobs", async () => {
    const c = setup();
    let samples = await c.scrape();
    for (const state of ["queued", "leased", "running", "succeeded", "failed", "cancelled"]) {
      expect(sampleValue(samples, "labrun_batch_items", { state })).toBe(0);
    }
    expect(sampleValue(samples, "labrun_batches", { state: "active" })).toBe(0);

    const batch = async (inputs: number[]) =>
      (await c.call("POST", "/v1/batches", c.tokens.client, { ...PROGRAM, inputs })).json
        .id as string;
    await batch([1, 2, 3, 4]);
    const agent = await c.register();
    const leased = await agent.lease(3);
    expect(leased).toHaveLength(3);
    await agent.result(leased[0]?.leaseId as string, OK);
    await agent.result(leased[1]?.leaseId as string, FAILED);
    const cancelled = await batch([5, 6]);
    await c.call("POST", `/v1/batches/${cancelled}/cancel`, c.tokens.client);
    await c.submit(); // a single job: a job, not an item

    samples = await c.scrape();
    const items = (state: string) => sampleValue(samples, "labrun_batch_items", { state });
    expect(items("queued")).toBe(1);
    expect(items("leased")).toBe(1);
    expect(items("succeeded")).toBe(1);
    expect(items("failed")).toBe(1);
    expect(items("cancelled")).toBe(2);
    expect(sampleValue(samples, "labrun_jobs", { state: "queued" })).toBe(2);
    expect(sampleValue(samples, "labrun_batches", { state: "active" })).toBe(1);
    expect(sampleValue(samples, "labrun_batches", { state: "cancelled" })).toBe(1);
    // Each item's end is also a job's end.
    expect(sampleValue(samples, "labrun_jobs_finished_total", { code: "OK" })).toBe(1);
    expect(sampleValue(samples, "labrun_jobs_finished_total", { code: "RUNTIME_ERROR" })).toBe(1);
    expect(sampleValue(samples, "labrun_jobs_finished_total", { code: "CANCELLED" })).toBe(2);
  });

  it("counts finished jobs by outcome code once each, and observes agents' run times", async () => {
    const c = setup();
    const agent = await c.register();
    for (let i = 0; i < 3; i++) await c.submit();
    const [first, second, third] = await agent.lease(3);
    if (!first || !second || !third) throw new Error("expected three leases");
    expect((await agent.result(first.leaseId, OK)).status).toBe(200);
    // A retried result changes nothing and is not counted again.
    expect((await agent.result(first.leaseId, OK)).status).toBe(200);
    expect((await agent.result(second.leaseId, FAILED)).status).toBe(200);
    await c.call("POST", `/v1/jobs/${third.id}/cancel`, c.tokens.client);
    // Cancelling again is a no-op.
    await c.call("POST", `/v1/jobs/${third.id}/cancel`, c.tokens.client);
    // A late result for the cancelled job is refused (409) and not counted.
    expect((await agent.result(third.leaseId, OK)).status).toBe(409);

    const samples = await c.scrape();
    const finished = (code: string) => sampleValue(samples, "labrun_jobs_finished_total", { code });
    expect(finished("OK")).toBe(1);
    expect(finished("RUNTIME_ERROR")).toBe(1);
    expect(finished("CANCELLED")).toBe(1);
    expect(finished("NODE_LOST")).toBe(0);
    const duration = (suffix: string, labels: Record<string, string>) =>
      sampleValue(samples, `labrun_job_duration_seconds_${suffix}`, labels);
    expect(duration("count", { state: "succeeded" })).toBe(1);
    expect(duration("sum", { state: "succeeded" })).toBeCloseTo(0.25);
    expect(duration("bucket", { state: "succeeded", le: "0.25" })).toBe(1);
    expect(duration("bucket", { state: "succeeded", le: "0.1" })).toBe(0);
    expect(duration("sum", { state: "failed" })).toBeCloseTo(2);
  });

  it("counts the sweeper's lease expiries and NODE_LOST, and a removed node's lost jobs", async () => {
    const c = setup();
    const agent = await c.register();
    await c.submit();
    await agent.lease(1);
    c.time.now += 1001;
    // maxAttempts 1: the expired lease fails the job with NODE_LOST.
    await sweepLeases(c.store, c.notifier, silent, c.time.now, c.metrics);
    let samples = await c.scrape();
    expect(sampleValue(samples, "labrun_lease_expiries_total", { action: "failed" })).toBe(1);
    expect(sampleValue(samples, "labrun_lease_expiries_total", { action: "requeued" })).toBe(0);
    expect(sampleValue(samples, "labrun_jobs_finished_total", { code: "NODE_LOST" })).toBe(1);

    const other = await c.register("other");
    await c.submit();
    await other.lease(1);
    expect(
      (await c.call("DELETE", `/v1/admin/nodes/${other.agentId}`, c.tokens.admin)).status,
    ).toBe(204);
    samples = await c.scrape();
    expect(sampleValue(samples, "labrun_jobs_finished_total", { code: "NODE_LOST" })).toBe(2);
    // Removing a node is not a lease running out.
    expect(sampleValue(samples, "labrun_lease_expiries_total", { action: "failed" })).toBe(1);
  });

  it("turns heartbeat stats into the container start histogram and warm/cold run counts", async () => {
    const c = setup();
    const agent = await c.register();
    const answer = await agent.heartbeat({
      running: [],
      stats: { containerStartMs: [120, 800], warmRuns: 3, coldRuns: 1 },
    });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ cancel: [] });
    await agent.heartbeat({ running: [], stats: { coldRuns: 2 } });

    const samples = await c.scrape();
    expect(sampleValue(samples, "labrun_agent_container_start_seconds_count")).toBe(2);
    expect(sampleValue(samples, "labrun_agent_container_start_seconds_sum")).toBeCloseTo(0.92);
    expect(
      sampleValue(samples, "labrun_agent_container_start_seconds_bucket", { le: "0.25" }),
    ).toBe(1);
    expect(sampleValue(samples, "labrun_agent_job_runs_total", { container: "warm" })).toBe(3);
    expect(sampleValue(samples, "labrun_agent_job_runs_total", { container: "cold" })).toBe(3);
  });

  it("keeps heartbeats without stats working, drops unknown stat keys, refuses bad stats", async () => {
    const c = setup();
    const agent = await c.register();
    expect((await agent.heartbeat({ running: [] })).status).toBe(200);
    expect((await agent.heartbeat({ running: [], stats: { pullMs: [5] } })).status).toBe(200);
    for (const stats of [
      { containerStartMs: [-1] },
      { containerStartMs: "12" },
      { warmRuns: 1.5 },
      { containerStartMs: Array.from({ length: 1025 }, () => 1) },
    ]) {
      const answer = await agent.heartbeat({ running: [], stats });
      expect(answer.status, JSON.stringify(stats).slice(0, 80)).toBe(400);
    }
    const samples = await c.scrape();
    expect(sampleValue(samples, "labrun_agent_container_start_seconds_count")).toBe(0);
  });

  it("labels requests by route pattern and status, never by raw path or id", async () => {
    const c = setup();
    const id = await c.submit();
    await c.call("GET", `/v1/jobs/${id}`, c.tokens.client);
    await c.call("GET", "/v1/jobs/j_unknown", c.tokens.client);
    await c.call("GET", `/v1/jobs/${id}`);
    await c.call("GET", "/no/such/route");
    await c.call("BREW", "/v1/jobs", c.tokens.client);

    const answer = await c.call("GET", "/metrics", c.tokens.admin);
    expect(answer.text).not.toContain(id);
    expect(answer.text).not.toContain("j_unknown");
    expect(answer.text).not.toContain("/no/such/route");
    const samples = parseExposition(answer.text);
    const count = (labels: Record<string, string>) =>
      sampleValue(samples, "labrun_http_request_duration_seconds_count", labels);
    expect(count({ method: "POST", route: "/v1/jobs", status: "201" })).toBe(1);
    expect(count({ method: "GET", route: "/v1/jobs/:id", status: "200" })).toBe(1);
    expect(count({ method: "GET", route: "/v1/jobs/:id", status: "404" })).toBe(1);
    expect(count({ method: "GET", route: "/v1/jobs/:id", status: "401" })).toBe(1);
    expect(count({ method: "GET", route: "(unmatched)", status: "404" })).toBe(1);
    expect(count({ method: "OTHER", status: "404" })).toBe(1);
  });

  it("counts long-poll waiters", async () => {
    const c = setup();
    const agent = await c.register();
    const waiting = c.call("POST", `/v1/agents/${agent.agentId}/lease`, agent.token, {
      free: 1,
      waitMs: 5_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const samples = await c.scrape();
    expect(sampleValue(samples, "labrun_long_polls_waiting", { kind: "lease" })).toBe(1);
    expect(sampleValue(samples, "labrun_long_polls_waiting", { kind: "job" })).toBe(0);
    await c.submit();
    expect((await waiting).json.jobs).toHaveLength(1);
  });

  it("gives every app its own registry: one app's events never show in another's", async () => {
    const a = setup();
    const b = setup();
    await a.submit();
    const id = await a.submit();
    await a.call("POST", `/v1/jobs/${id}/cancel`, a.tokens.client);
    const fromB = await b.scrape();
    expect(sampleValue(fromB, "labrun_jobs_finished_total", { code: "CANCELLED" })).toBe(0);
    expect(sampleValue(fromB, "labrun_jobs", { state: "queued" })).toBe(0);
    expect(sampleValue(await a.scrape(), "labrun_jobs_finished_total", { code: "CANCELLED" })).toBe(
      1,
    );
  });

  it("adds Node's process metrics when asked, for any number of coordinators in one process", async () => {
    const c = setup();
    const first = createMetrics({ store: c.store, processMetrics: true });
    const second = createMetrics({ store: c.store, processMetrics: true });
    for (const metrics of [first, second]) {
      const samples = parseExposition(await metrics.scrape());
      expect(sampleValue(samples, "process_cpu_seconds_total")).toBeGreaterThanOrEqual(0);
      expect(sampleValue(samples, "labrun_jobs", { state: "queued" })).toBe(0);
    }
    expect(
      parseExposition(await c.metrics.scrape()).some((s) => s.name.startsWith("process_")),
    ).toBe(false);
  });
});
