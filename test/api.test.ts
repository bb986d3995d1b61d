import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";

// Real HTTP on loopback against a real coordinator; no agent needed.
let cluster: TestCluster;
let agentToken: string;
beforeAll(async () => {
  cluster = await startTestCluster({ agents: [] });
  const registered = await post("/v1/agents/register", cluster.tokens.agent, {
    name: "api-test-agent",
    hostname: "localhost",
    slots: 1,
    version: "test",
  });
  expect(registered.status).toBe(200);
  agentToken = ((await registered.json()) as { token: string }).token;
});
afterAll(async () => {
  await cluster?.close();
});

async function post(path: string, token: string | undefined, body: unknown, raw = false) {
  return fetch(`${cluster.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: raw ? (body as string) : JSON.stringify(body),
  });
}

async function errorOf(response: Response) {
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message).not.toMatch(/\n\s+at /); // never a stack trace
  return body.error.code;
}

describe("HTTP API validation and auth", () => {
  it.each([
    ["not JSON at all", "{nope", true],
    ["an empty object", {}, false],
    ["a source of the wrong type", { source: 42 }, false],
    ["an unknown field", { source: "exports.main=()=>1", extra: true }, false],
    ["a bad file name", { source: "exports.main=()=>1", filename: "../etc/passwd.js" }, false],
    ["a negative timeout", { source: "exports.main=()=>1", limits: { timeoutMs: -1 } }, false],
  ])("answers 400 VALIDATION_ERROR to %s", async (_what, body, raw) => {
    const response = await post("/v1/jobs", cluster.tokens.client, body, raw as boolean);
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toBe("VALIDATION_ERROR");
  });

  it("answers 400 to a malformed lease body from an agent", async () => {
    const agentId = (await cluster.admin.nodes())[0]?.id;
    const response = await post(`/v1/agents/${agentId}/lease`, agentToken, { free: "lots" });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toBe("VALIDATION_ERROR");
  });

  it("answers 401 without a token", async () => {
    const response = await post("/v1/jobs", undefined, { source: "exports.main=()=>1" });
    expect(response.status).toBe(401);
    expect(await errorOf(response)).toBe("UNAUTHORIZED");
  });

  it("answers 401 to a wrong token", async () => {
    const response = await fetch(`${cluster.url}/v1/jobs`, {
      headers: { authorization: "Bearer not-a-real-token" },
    });
    expect(response.status).toBe(401);
    expect(await errorOf(response)).toBe("UNAUTHORIZED");
  });

  it("forbids an agent token to submit jobs (403)", async () => {
    const response = await post("/v1/jobs", agentToken, { source: "exports.main=()=>1" });
    expect(response.status).toBe(403);
    expect(await errorOf(response)).toBe("FORBIDDEN");
  });

  it("forbids an agent token to read jobs (403)", async () => {
    const { id } = await cluster.client.submit({ source: "exports.main=()=>1" });
    for (const path of [`/v1/jobs/${id}`, "/v1/jobs"]) {
      const response = await fetch(`${cluster.url}${path}`, {
        headers: { authorization: `Bearer ${agentToken}` },
      });
      expect(response.status).toBe(403);
      expect(await errorOf(response)).toBe("FORBIDDEN");
    }
  });

  it("forbids the join token to submit jobs (403)", async () => {
    const response = await post("/v1/jobs", cluster.tokens.agent, { source: "exports.main=()=>1" });
    expect(response.status).toBe(403);
  });

  it("forbids a client token on the admin API (403)", async () => {
    const response = await fetch(`${cluster.url}/v1/admin/nodes`, {
      headers: { authorization: `Bearer ${cluster.tokens.client}` },
    });
    expect(response.status).toBe(403);
  });

  it("answers 404 NOT_FOUND for an unknown job", async () => {
    const response = await fetch(`${cluster.url}/v1/jobs/j_doesnotexist`, {
      headers: { authorization: `Bearer ${cluster.tokens.client}` },
    });
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toBe("NOT_FOUND");
  });
});
