import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  Batch,
  type ItemResult,
  NDJSON,
  type Outcome,
  ResultGroupResponse,
  SubmitBatchResponse,
} from "../protocol/index.js";
import { createApp } from "./app.js";
import { Notifier } from "./notifier.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers field by field
type Json = Record<string, any>;

const SPEC = { source: "exports.main = (n) => n * 2", filename: "main.js" };
const echo = (input: unknown): Outcome => ({
  ok: true,
  result: input as never,
  logs: "",
  stats: { durationMs: 1 },
});

/** The app over a temp store; the test plays the agent through the store's verbs. */
async function setup(settings: Parameters<typeof openTempCoordinator>[1] = {}) {
  const parts = openTempCoordinator("batches", { maxInputBytes: 1024, ...settings });
  cleanups.push(parts.close);
  const notifier = new Notifier();
  const app = createApp({ ...parts, notifier, logger: pino({ level: "silent" }) });
  const token = parts.tokens.client;
  const request = (method: string, path: string, body?: string, type?: string) =>
    app.request(path, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(type ? { "content-type": type } : {}),
      },
      // Bytes, not a string: a string body would get text/plain from fetch's Request.
      ...(body === undefined ? {} : { body: new TextEncoder().encode(body) }),
    });
  const call = async (method: string, path: string, body?: string, type?: string) => {
    const response = await request(method, path, body, type);
    return { status: response.status, body: (await response.json()) as Json };
  };
  const agent = await parts.store.registerAgent(
    { name: "sim", hostname: "h", slots: 64, version: "t", labels: {} },
    "hash",
    Date.now(),
  );
  /** Leases up to `count` items and returns them, as an agent would. */
  const lease = (count: number) => parts.store.lease(agent.id, count, Date.now());
  const finish = async (leaseId: string, outcome: Outcome) => {
    const { value } = await parts.store.complete(agent.id, leaseId, outcome, Date.now());
    if (value.batchId) notifier.batchProgress(value.batchId);
  };
  return { ...parts, app, notifier, request, call, agent, lease, finish };
}

const ndjson = (...lines: unknown[]) => `${lines.map((line) => JSON.stringify(line)).join("\n")}\n`;

/** Reads NDJSON lines from a streamed answer as they come, `count` of them. */
async function readLines(response: Response, count: number): Promise<ItemResult[]> {
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  const decoder = new TextDecoder();
  let text = "";
  const lines: ItemResult[] = [];
  while (lines.length < count) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const parts = text.split("\n");
    text = parts.pop() ?? "";
    for (const part of parts) if (part) lines.push(JSON.parse(part) as ItemResult);
  }
  await reader.cancel();
  // A reader that stops after `count` lines has seen only those.
  return lines.slice(0, count);
}

describe("POST /v1/batches", () => {
  it("queues every input of an NDJSON body as an item, and counts them", async () => {
    const { call, store } = await setup();
    const submitted = await call("POST", "/v1/batches", ndjson(SPEC, 1, 2, 3), NDJSON);
    expect(submitted.status).toBe(201);
    expect(SubmitBatchResponse.parse(submitted.body)).toMatchObject({ state: "queued", total: 3 });
    const read = await call("GET", `/v1/batches/${submitted.body.id}`);
    expect(read.status).toBe(200);
    expect(Batch.parse(read.body)).toMatchObject({
      total: 3,
      counts: { queued: 3, running: 0, succeeded: 0, failed: 0, cancelled: 0 },
    });
    const item = await call("GET", `/v1/jobs/j${String(submitted.body.id).slice(1)}-2`);
    expect(item.body).toMatchObject({ batchId: submitted.body.id, index: 2 });
    expect(await store.hasQueued()).toBe(true);
  });

  it("takes the same batch as one JSON document, with or without a content type", async () => {
    const { call } = await setup();
    const body = JSON.stringify({ ...SPEC, inputs: [{ a: 1 }, null], maxParallel: 1 });
    const typed = await call("POST", "/v1/batches", body, "application/json");
    expect(typed.status).toBe(201);
    const untyped = await call("POST", "/v1/batches", body);
    expect(untyped.status).toBe(201);
    expect((await call("GET", `/v1/batches/${untyped.body.id}`)).body.maxParallel).toBe(1);
  });

  it("refuses a whole batch for one bad item, naming its index, and queues nothing", async () => {
    const { call, store } = await setup();
    const bad = await call("POST", "/v1/batches", `${ndjson(SPEC, 1, 2)}{nope\n`, NDJSON);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: "VALIDATION_ERROR", details: { index: 2 } });
    const big = await call("POST", "/v1/batches", ndjson(SPEC, 1, "x".repeat(2000)), NDJSON);
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", details: { index: 1 } });
    const spec = await call("POST", "/v1/batches", ndjson({ ...SPEC, retries: 99 }, 1), NDJSON);
    expect(spec.status).toBe(400);
    expect(spec.body.error.message).toMatch(/^invalid batch: retries/);
    expect(await store.hasQueued()).toBe(false);
    expect((await call("GET", "/v1/batches")).body.batches).toEqual([]);
  });

  it("refuses more items than --max-batch with 413", async () => {
    const { call } = await setup({ maxBatchItems: 2 });
    const answer = await call("POST", "/v1/batches", ndjson(SPEC, 1, 2, 3), NDJSON);
    expect(answer.status).toBe(413);
  });

  it("needs a client token", async () => {
    const { app } = await setup();
    const answer = await app.request("/v1/batches", { method: "POST", body: ndjson(SPEC, 1) });
    expect(answer.status).toBe(401);
  });
});

describe("GET /v1/batches/:id/results", () => {
  it("streams each line once every item before it is done, then ends", async () => {
    const { call, request, lease, finish } = await setup();
    const { body } = await call("POST", "/v1/batches", ndjson(SPEC, 10, 11, 12), NDJSON);
    const [zero, one, two] = await lease(3);
    const stream = await request("GET", `/v1/batches/${body.id}/results`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    await finish(one?.leaseId ?? "", echo("one"));
    await finish(two?.leaseId ?? "", echo("two"));
    setTimeout(() => void finish(zero?.leaseId ?? "", echo("zero")), 50);
    const lines = await readLines(stream, 3);
    expect(lines.map((line) => [line.index, line.ok && line.result])).toEqual([
      [0, "zero"],
      [1, "one"],
      [2, "two"],
    ]);
    // The batch is over: a new read gets every line and its end.
    const again = await request("GET", `/v1/batches/${body.id}/results?from=1`);
    expect(
      (await again.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).index),
    ).toEqual([1, 2]);
  });

  it("resumes from=K with no gap and no duplicate", async () => {
    const { call, request, lease, finish } = await setup();
    const inputs = Array.from({ length: 20 }, (_, index) => index);
    const { body } = await call("POST", "/v1/batches", ndjson(SPEC, ...inputs), NDJSON);
    for (const job of await lease(20)) await finish(job.leaseId, echo(job.spec.input));
    const first = await readLines(await request("GET", `/v1/batches/${body.id}/results`), 7);
    const from = first.length;
    const rest = (
      await (await request("GET", `/v1/batches/${body.id}/results?from=${from}`)).text()
    )
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as ItemResult).index);
    expect([...first.map((line) => line.index), ...rest]).toEqual(inputs);
  });

  it("streams in completion order with order=completion", async () => {
    const { call, request, lease, finish } = await setup();
    const { body } = await call("POST", "/v1/batches", ndjson(SPEC, 0, 1, 2), NDJSON);
    const [zero, one, two] = await lease(3);
    await finish(two?.leaseId ?? "", echo(2));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await finish(zero?.leaseId ?? "", echo(0));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await finish(one?.leaseId ?? "", echo(1));
    const text = await (
      await request("GET", `/v1/batches/${body.id}/results?order=completion`)
    ).text();
    expect(
      text
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line).index),
    ).toEqual([2, 0, 1]);
  });

  it("is 404 for a batch that does not exist", async () => {
    const { call } = await setup();
    const answer = await call("GET", "/v1/batches/b_nope/results");
    expect(answer.status).toBe(404);
    expect(answer.body.error.code).toBe("NOT_FOUND");
  });
});

describe("cancel, retry and result groups", () => {
  it("cancels every item at once and ends the stream", async () => {
    const { call, request } = await setup();
    const { body } = await call("POST", "/v1/batches", ndjson(SPEC, 1, 2, 3), NDJSON);
    const stream = request("GET", `/v1/batches/${body.id}/results`);
    const cancelled = await call("POST", `/v1/batches/${body.id}/cancel`);
    expect(cancelled.body).toMatchObject({ state: "cancelled", counts: { cancelled: 3 } });
    const lines = (await (await stream).text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((line) => line.error.code)).toEqual(["CANCELLED", "CANCELLED", "CANCELLED"]);
  });

  it("queues the failed items again on retry", async () => {
    const { call, lease, finish } = await setup();
    const { body } = await call("POST", "/v1/batches", ndjson(SPEC, 1, 2), NDJSON);
    const [a, b] = await lease(2);
    await finish(a?.leaseId ?? "", echo(1));
    await finish(b?.leaseId ?? "", {
      ok: false,
      error: { code: "RUNTIME_ERROR", message: "boom" },
      logs: "",
      stats: { durationMs: 1 },
    });
    expect((await call("GET", `/v1/batches/${body.id}`)).body.state).toBe("failed");
    expect((await call("POST", `/v1/batches/${body.id}/retry`)).body).toEqual({ requeued: 1 });
    expect((await call("GET", `/v1/batches/${body.id}`)).body.counts).toMatchObject({
      queued: 1,
      succeeded: 1,
    });
  });

  it("takes a group of results in one request, each answered on its own", async () => {
    const { call, app, lease, store, agent } = await setup();
    await call("POST", "/v1/batches", ndjson(SPEC, 1, 2), NDJSON);
    const [a, b] = await lease(2);
    const token = "agent-token";
    // The simulated agent's token: registered through the store with its hash.
    const { hashToken } = await import("./tokens.js");
    const own = await store.registerAgent(
      { name: "grouped", hostname: "h", slots: 4, version: "t", labels: {} },
      hashToken(token),
      Date.now(),
    );
    expect(own.id).not.toBe(agent.id);
    const answer = await app.request(`/v1/agents/${agent.id}/results/group`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ results: [{ leaseId: a?.leaseId, outcome: echo(1) }] }),
    });
    // Another agent's token may not report for this one.
    expect(answer.status).toBe(403);
    const mine = await app.request(`/v1/agents/${own.id}/results/group`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({
        results: [
          { leaseId: a?.leaseId, outcome: echo(1) },
          { leaseId: b?.leaseId, outcome: echo(2) },
        ],
      }),
    });
    expect(mine.status).toBe(200);
    // Both leases are the first agent's: refused as stale, each on its own.
    expect(ResultGroupResponse.parse(await mine.json()).results).toEqual([
      {
        leaseId: a?.leaseId,
        accepted: false,
        error: expect.objectContaining({ code: "STALE_LEASE" }),
      },
      {
        leaseId: b?.leaseId,
        accepted: false,
        error: expect.objectContaining({ code: "STALE_LEASE" }),
      },
    ]);
  });
});
