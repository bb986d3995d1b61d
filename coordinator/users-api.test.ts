import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { AuditPage, type Outcome, UserList, UserToken } from "../protocol/index.js";
import { createApp } from "./app.js";
import { Notifier } from "./notifier.js";
import { buildOpenApiDocument } from "./openapi.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const silent = pino({ level: "silent" });
const PROGRAM = { source: "exports.main = () => 42" };
const OK: Outcome = { ok: true, result: 42, logs: "", stats: { durationMs: 5 } };

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers field by field
type Json = Record<string, any>;

function setup(settings: Parameters<typeof openTempCoordinator>[1] = {}) {
  const parts = openTempCoordinator("users", { leaseTtlMs: 1000, heartbeatMs: 200, ...settings });
  cleanups.push(parts.close);
  const notifier = new Notifier();
  cleanups.push(() => notifier.close());
  const app = createApp({ ...parts, notifier, logger: silent });
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
    const type = response.headers.get("content-type") ?? "";
    const json = type.includes("json") && !type.includes("ndjson");
    return { status: response.status, body: (json && text ? JSON.parse(text) : text) as Json };
  };
  const addUser = async (name: string, extra: Json = {}) => {
    const added = await call("POST", "/v1/admin/users", parts.tokens.admin, { name, ...extra });
    expect(added.status).toBe(201);
    return UserToken.parse(added.body).token;
  };
  return { app, call, addUser, tokens: parts.tokens };
}

type Setup = ReturnType<typeof setup>;

/** Every kind of caller the table runs a route against. */
async function callers({ call, addUser, tokens }: Setup) {
  const owner = await addUser("alice");
  const other = await addUser("bob");
  const removed = await addUser("carol");
  expect((await call("DELETE", "/v1/admin/users/carol", tokens.admin)).status).toBe(200);
  const registered = await call("POST", "/v1/agents/register", tokens.agent, {
    name: "node-1",
    hostname: "lab",
    slots: 4,
    version: "test",
  });
  return {
    owner,
    other,
    admin: tokens.admin,
    agent: registered.body.token as string,
    none: undefined,
    removed,
  };
}

type Who = keyof Awaited<ReturnType<typeof callers>>;

/** What each caller gets from a route about the owner's job or batch. */
const EXPECTED: Record<Who, number> = {
  owner: 200,
  other: 404,
  admin: 200,
  agent: 403,
  none: 401,
  removed: 401,
};

describe("ownership: every client route against every kind of caller", () => {
  it("answers the owner and the admin, 404s another user as for a missing one, refuses the rest", async () => {
    const context = setup();
    const { call } = context;
    const who = await callers(context);
    const job = (await call("POST", "/v1/jobs", who.owner, PROGRAM)).body.id as string;
    const batch = (await call("POST", "/v1/batches", who.owner, { ...PROGRAM, inputs: [1, 2] }))
      .body.id as string;

    // Each client route, with the path of the owner's job or batch.
    const routes: { method: string; path: string; template: string; body?: Json }[] = [
      { method: "GET", path: `/v1/jobs/${job}`, template: "GET /v1/jobs/{id}" },
      { method: "GET", path: `/v1/jobs/${job}?wait=0`, template: "GET /v1/jobs/{id}" },
      { method: "GET", path: `/v1/batches/${batch}`, template: "GET /v1/batches/{id}" },
      {
        method: "GET",
        path: `/v1/batches/${batch}/summary`,
        template: "GET /v1/batches/{id}/summary",
      },
      {
        method: "POST",
        path: `/v1/batches/${batch}/retry`,
        template: "POST /v1/batches/{id}/retry",
      },
      { method: "POST", path: `/v1/jobs/${job}/cancel`, template: "POST /v1/jobs/{id}/cancel" },
      {
        method: "POST",
        path: `/v1/batches/${batch}/cancel`,
        template: "POST /v1/batches/{id}/cancel",
      },
      // After the cancel: a finished batch's stream ends.
      {
        method: "GET",
        path: `/v1/batches/${batch}/results`,
        template: "GET /v1/batches/{id}/results",
      },
    ];
    // Owner last on the routes that change things, so the others meet a live job.
    const order: Who[] = ["other", "agent", "none", "removed", "admin", "owner"];
    for (const route of routes) {
      for (const caller of order) {
        const answer = await call(route.method, route.path, who[caller], route.body);
        expect(answer.status, `${route.method} ${route.path} as ${caller}`).toBe(EXPECTED[caller]);
        if (caller === "other") {
          // Exactly the answer for an id that does not exist.
          const kind = route.path.startsWith("/v1/jobs") ? "job" : "batch";
          const id = kind === "job" ? job : batch;
          expect(answer.body).toEqual({
            error: { code: "NOT_FOUND", message: `${kind} ${id} does not exist` },
          });
          const missingId = kind === "job" ? "j_missing" : "b_missing";
          const missing = await call(route.method, route.path.replace(id, missingId), who.owner);
          expect(missing.body).toEqual({
            error: { code: "NOT_FOUND", message: `${kind} ${missingId} does not exist` },
          });
        }
      }
    }

    // Submits and lists: everyone with a token of their own gets their own.
    const listed = async (path: string, caller: Who) => call("GET", path, who[caller]);
    for (const [path, key] of [
      ["/v1/jobs", "jobs"],
      ["/v1/batches", "batches"],
    ] as const) {
      expect((await listed(path, "owner")).body[key]).toHaveLength(1);
      expect((await listed(path, "other")).body[key]).toHaveLength(0);
      expect((await listed(path, "admin")).body[key]).toHaveLength(1);
      expect((await listed(`${path}?user=alice`, "admin")).body[key]).toHaveLength(1);
      expect((await listed(`${path}?user=bob`, "admin")).body[key]).toHaveLength(0);
      expect((await listed(`${path}?user=alice`, "other")).status).toBe(403);
      expect((await listed(`${path}?all=true`, "other")).status).toBe(403);
      expect((await listed(`${path}?user=bob`, "other")).status).toBe(200);
      expect((await listed(path, "agent")).status).toBe(403);
      expect((await listed(path, "none")).status).toBe(401);
      expect((await listed(path, "removed")).status).toBe(401);
    }
    for (const [path, body] of [
      ["/v1/jobs", PROGRAM],
      ["/v1/batches", { ...PROGRAM, inputs: [1] }],
    ] as const) {
      expect((await call("POST", path, who.other, body)).status).toBe(201);
      expect((await call("POST", path, who.admin, body)).status).toBe(201);
      expect((await call("POST", path, who.agent, body)).status).toBe(403);
      expect((await call("POST", path, who.none, body)).status).toBe(401);
      expect((await call("POST", path, who.removed, body)).status).toBe(401);
    }
    // Who each token is: a user's own name, the admin as such; no answer for the rest.
    const whoami = Object.fromEntries(
      await Promise.all(
        order.map(async (caller) => [caller, await call("GET", "/v1/whoami", who[caller])]),
      ),
    );
    expect(whoami).toEqual({
      owner: { status: 200, body: { role: "client", user: "alice" } },
      other: { status: 200, body: { role: "client", user: "bob" } },
      admin: { status: 200, body: { role: "admin" } },
      agent: { status: 403, body: { error: expect.objectContaining({ code: "FORBIDDEN" }) } },
      none: { status: 401, body: { error: expect.objectContaining({ code: "UNAUTHORIZED" }) } },
      removed: { status: 401, body: { error: expect.objectContaining({ code: "UNAUTHORIZED" }) } },
    });
    expect((await call("GET", "/v1/whoami", context.tokens.client)).body).toEqual({
      role: "client",
      user: "default",
    });

    const bobs = (await call("GET", "/v1/jobs", who.other)).body.jobs as Json[];
    expect(bobs.map((entry) => entry.owner)).toEqual(["bob"]);
    // The admin token submits as `default`.
    expect((await call("GET", "/v1/jobs?user=default", who.admin)).body.jobs).toHaveLength(1);

    // Every client route of the API document is in this table.
    const document = buildOpenApiDocument(context.app) as Json;
    const clientRoutes = Object.entries(document.paths as Json).flatMap(([path, operations]) =>
      Object.entries(operations as Json)
        .filter(([, operation]) =>
          (operation.security as Json[] | undefined)?.some((entry) => "clientToken" in entry),
        )
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    const tested = new Set([
      ...routes.map((route) => route.template),
      "GET /v1/jobs",
      "POST /v1/jobs",
      "GET /v1/batches",
      "POST /v1/batches",
      "GET /v1/whoami",
    ]);
    expect(new Set(clientRoutes)).toEqual(tested);
  });

  it("lets an agent see only its own leases", async () => {
    const context = setup();
    const { call, tokens } = context;
    const alice = await context.addUser("alice");
    await call("POST", "/v1/jobs", alice, PROGRAM);
    const register = (name: string) =>
      call("POST", "/v1/agents/register", tokens.agent, {
        name,
        hostname: "lab",
        slots: 1,
        version: "test",
      });
    const first = (await register("n1")).body;
    const second = (await register("n2")).body;
    const leased = await call("POST", `/v1/agents/${first.agentId}/lease`, first.token, {
      free: 1,
      waitMs: 0,
    });
    const [lease] = leased.body.jobs as Json[];
    // The other agent can neither act for the first, nor complete its lease.
    expect(
      (await call("POST", `/v1/agents/${first.agentId}/heartbeat`, second.token, { running: [] }))
        .status,
    ).toBe(403);
    const stolen = await call("POST", `/v1/agents/${second.agentId}/results`, second.token, {
      leaseId: lease?.leaseId,
      outcome: OK,
    });
    expect(stolen.status).toBe(409);
  });
});

describe("/v1/admin/users", () => {
  it("adds a user whose token works at once; lists them; refuses a name twice", async () => {
    const { call, addUser, tokens } = setup();
    const token = await addUser("alice", { maxRunning: 2, maxQueued: 5, weight: 2 });
    expect(token).toMatch(/^lru_[A-Za-z0-9_-]{43}$/);
    expect((await call("POST", "/v1/jobs", token, PROGRAM)).status).toBe(201);
    const again = await call("POST", "/v1/admin/users", tokens.admin, { name: "alice" });
    expect(again.status).toBe(409);
    const list = UserList.parse((await call("GET", "/v1/admin/users", tokens.admin)).body);
    expect(list.users.map((user) => user.name)).toEqual(["alice", "default"]);
    expect(list.users[0]).toMatchObject({
      queued: 1,
      running: 0,
      weight: 2,
      maxRunning: 2,
      maxQueued: 5,
    });
    // Only the admin token manages users.
    expect((await call("GET", "/v1/admin/users", token)).status).toBe(403);
    expect((await call("GET", "/v1/admin/users", tokens.client)).status).toBe(403);
    const bad = await call("POST", "/v1/admin/users", tokens.admin, { name: "1st" });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe("VALIDATION_ERROR");
  });

  it("removes a user: their token is refused at once, queued jobs cancelled, running ones finish", async () => {
    const { call, addUser, tokens } = setup();
    const token = await addUser("alice");
    const registered = await call("POST", "/v1/agents/register", tokens.agent, {
      name: "n",
      hostname: "lab",
      slots: 1,
      version: "test",
    });
    const { agentId, token: agentToken } = registered.body;
    const running = (await call("POST", "/v1/jobs", token, PROGRAM)).body.id;
    const queued = (await call("POST", "/v1/jobs", token, PROGRAM)).body.id;
    const lease = await call("POST", `/v1/agents/${agentId}/lease`, agentToken, {
      free: 1,
      waitMs: 0,
    });
    expect(lease.body.jobs[0].id).toBe(running);
    const removed = await call("DELETE", "/v1/admin/users/alice", tokens.admin);
    expect(removed).toEqual({
      status: 200,
      body: { name: "alice", cancelled: 1, running: 1 },
    });
    expect((await call("GET", `/v1/jobs/${queued}`, token)).status).toBe(401);
    expect((await call("GET", `/v1/jobs/${queued}`, tokens.admin)).body.state).toBe("cancelled");
    const done = await call("POST", `/v1/agents/${agentId}/results`, agentToken, {
      leaseId: lease.body.jobs[0].leaseId,
      outcome: OK,
    });
    expect(done.status).toBe(200);
    expect((await call("GET", `/v1/jobs/${running}`, tokens.admin)).body.state).toBe("succeeded");
    expect((await call("DELETE", "/v1/admin/users/alice", tokens.admin)).status).toBe(404);
    expect((await call("DELETE", "/v1/admin/users/default", tokens.admin)).status).toBe(409);
  });

  it("rotates a token: the old one is refused at once, the new one works", async () => {
    const { call, addUser, tokens } = setup();
    const old = await addUser("alice");
    const rotated = await call("POST", "/v1/admin/users/alice/token", tokens.admin);
    expect(rotated.status).toBe(200);
    const { token } = UserToken.parse(rotated.body);
    expect(token).not.toBe(old);
    expect((await call("GET", "/v1/jobs", old)).status).toBe(401);
    expect((await call("GET", "/v1/jobs", token)).status).toBe(200);
    expect((await call("POST", "/v1/admin/users/nobody/token", tokens.admin)).status).toBe(404);
    // The shared client token keeps working as `default`.
    expect((await call("GET", "/v1/jobs", tokens.client)).status).toBe(200);
  });

  it("refuses a submit over the max-queued quota with 429 and the numbers; nothing is queued", async () => {
    const { call, addUser, tokens } = setup({ defaultMaxQueued: 2 });
    const token = await addUser("alice");
    expect((await call("POST", "/v1/jobs", token, PROGRAM)).status).toBe(201);
    const batch = await call("POST", "/v1/batches", token, { ...PROGRAM, inputs: [1, 2] });
    expect(batch.status).toBe(429);
    expect(batch.body.error).toMatchObject({
      code: "QUOTA_EXCEEDED",
      details: { user: "alice", maxQueued: 2, queued: 1, submitted: 2 },
    });
    expect((await call("GET", "/v1/batches", token)).body.batches).toHaveLength(0);
    expect((await call("POST", "/v1/jobs", token, PROGRAM)).status).toBe(201);
    expect((await call("POST", "/v1/jobs", token, PROGRAM)).status).toBe(429);
    // The quota is per user: default's jobs are not alice's.
    expect((await call("POST", "/v1/jobs", tokens.client, PROGRAM)).status).toBe(201);
  });
});

describe("/v1/admin/audit", () => {
  it("records user add, rm, rotate and node drain, resume, rm with who, when and what", async () => {
    const { call, addUser, tokens } = setup();
    await addUser("alice", { maxQueued: 9 });
    await call("POST", "/v1/admin/users/alice/token", tokens.admin);
    await call("DELETE", "/v1/admin/users/alice", tokens.admin);
    const { agentId } = (
      await call("POST", "/v1/agents/register", tokens.agent, {
        name: "n",
        hostname: "lab",
        slots: 1,
        version: "test",
      })
    ).body;
    await call("POST", `/v1/admin/nodes/${agentId}/drain`, tokens.admin);
    await call("POST", `/v1/admin/nodes/${agentId}/resume`, tokens.admin);
    await call("DELETE", `/v1/admin/nodes/${agentId}`, tokens.admin);
    // A refused action is not recorded.
    await call("DELETE", "/v1/admin/users/nobody", tokens.admin);
    const page = AuditPage.parse((await call("GET", "/v1/admin/audit", tokens.admin)).body);
    expect(page.entries.map((entry) => [entry.action, entry.target])).toEqual([
      ["node.rm", agentId],
      ["node.resume", agentId],
      ["node.drain", agentId],
      ["user.rm", "alice"],
      ["user.rotate", "alice"],
      ["user.add", "alice"],
    ]);
    expect(page.entries.at(-1)).toMatchObject({ actor: "admin", details: { maxQueued: 9 } });
    expect(Date.parse(page.entries[0]?.at ?? "")).toBeGreaterThan(Date.now() - 60_000);
    expect((await call("GET", "/v1/admin/audit", tokens.client)).status).toBe(403);
  });
});
