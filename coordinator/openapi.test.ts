import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RegisterAgentResponse } from "../protocol/index.js";
import { createApp } from "./app.js";
import { Notifier } from "./notifier.js";
import { SECURITY_SCHEMES } from "./routes/declare.js";
import type { Role } from "./routeTypes.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// biome-ignore lint/suspicious/noExplicitAny: the test walks the document as plain JSON
type Json = any;

const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];
const ROLE_OF_SCHEME = new Map(
  Object.entries(SECURITY_SCHEMES).map(([role, { name }]) => [name, role as Role]),
);

/** An app over a temp store, its document as served, and a token for each role. */
async function setup() {
  const { config, store, tokens, close } = openTempCoordinator("openapi");
  cleanups.push(close);
  const app = createApp({
    store,
    notifier: new Notifier(),
    tokens,
    config,
    logger: pino({ level: "silent" }),
  });
  const served = await app.request("/openapi.json");
  expect(served.status).toBe(200);
  const document: Json = await served.json();
  const registered = RegisterAgentResponse.parse(
    await (
      await app.request("/v1/agents/register", {
        method: "POST",
        headers: { authorization: `Bearer ${tokens.agent}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "n", hostname: "h", slots: 1, version: "v" }),
      })
    ).json(),
  );
  const tokenOf: Record<Role, string> = {
    client: tokens.client,
    admin: tokens.admin,
    join: tokens.agent,
    agent: registered.token,
  };
  return { app, document, tokenOf, agentId: registered.agentId };
}

interface DocumentedOperation {
  method: string;
  /** The document's form: `/v1/jobs/{id}`. */
  path: string;
  operation: Json;
  roles: Role[];
}

function operationsOf(document: Json): DocumentedOperation[] {
  return Object.entries(document.paths as Record<string, Json>).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => METHODS.includes(key))
      .map((method) => {
        const operation = item[method];
        const roles = (operation.security as Json[]).flatMap((entry) =>
          Object.keys(entry).map((name) => ROLE_OF_SCHEME.get(name) as Role),
        );
        return { method, path, operation, roles };
      }),
  );
}

/** A path of the operation with its parameters filled in (the agent's own id for agent routes). */
const concrete = (path: string, agentId: string) => path.replace(/\{[^}]+\}/g, agentId);

/** The page files for a browser (dashboard, API reference): not part of the JSON API. */
const isPageFile = (path: string) =>
  path === "/" || path.startsWith("/dashboard/") || path === "/docs" || path.startsWith("/docs/");

describe("the OpenAPI document", () => {
  it("lists every route the app serves, each once, and nothing it does not serve", async () => {
    const { app, document } = await setup();
    const served = new Set(
      app.routes
        // Middleware (app.use) is registered for method ALL; it is no route of its own.
        .filter((route) => route.method !== "ALL" && !isPageFile(route.path))
        .map((route) => `${route.method} ${route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`),
    );
    const documented = operationsOf(document).map(
      ({ method, path }) => `${method.toUpperCase()} ${path}`,
    );
    expect(documented.sort()).toEqual([...served].sort());
    expect(documented).toContain("POST /v1/jobs");
  });

  it("is OpenAPI 3.1 whose every $ref resolves inside the document", async () => {
    const { document } = await setup();
    expect(document.openapi).toBe("3.1.0");
    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (typeof value === "object" && value !== null) {
        for (const [key, item] of Object.entries(value)) {
          if (key === "$ref") refs.push(item as string);
          else walk(item);
        }
      }
    };
    walk(document);
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of new Set(refs)) {
      expect(ref, ref).toMatch(/^#\/components\/schemas\/[A-Za-z0-9_]+$/);
      const target = ref
        .slice(2)
        .split("/")
        .reduce((node: Json, key) => node?.[key], document);
      expect(target, ref).toBeTypeOf("object");
    }
    // z.json() (job input, result) is one shared recursive schema.
    expect(JSON.stringify(document.components.schemas.JsonValue)).toContain(
      '"$ref":"#/components/schemas/JsonValue"',
    );
  });

  it("shows request bodies as a client may send them, and each route's refusals", async () => {
    const { document } = await setup();
    const schemas = document.components.schemas;
    // LeaseRequest.waitMs has a default: a client may leave it out.
    expect(schemas.LeaseRequest.required).toEqual(["free"]);
    expect(schemas.LeaseRequest.additionalProperties).toBe(false);
    expect(schemas.HeartbeatRequest.required).toEqual(["running"]);
    const list = document.paths["/v1/jobs"].get.parameters;
    expect(list.map((p: Json) => [p.name, p.in, p.required])).toEqual([
      ["state", "query", false],
      ["user", "query", false],
      ["all", "query", false],
      ["limit", "query", false],
      ["cursor", "query", false],
    ]);
    const submit = document.paths["/v1/jobs"].post;
    expect(Object.keys(submit.responses)).toEqual([
      "201",
      "400",
      "401",
      "403",
      "413",
      "415",
      "429",
    ]);
    const get = document.paths["/v1/jobs/{id}"].get;
    expect(get.parameters[0]).toMatchObject({ name: "id", in: "path", required: true });
    expect(get.responses["404"].content["application/json"].schema.$ref).toBe(
      "#/components/schemas/ApiErrorBody",
    );
    expect(document.paths["/v1/agents/{id}/results"].post.responses).toHaveProperty("409");
    expect(document.paths["/healthz"].get.security).toEqual([]);
  });

  // A fresh app per route: the time grows with the routes (20 and more).
  it("names the bearer token each route takes, as the app enforces it", async () => {
    const { document } = await setup();
    const schemes = document.components.securitySchemes;
    for (const scheme of Object.values(schemes) as Json[]) {
      expect(scheme).toMatchObject({ type: "http", scheme: "bearer" });
    }
    for (const { method, path, operation, roles } of operationsOf(document)) {
      // A fresh app for each: an allowed call may remove the agent (DELETE) and its token.
      const { app, tokenOf, agentId } = await setup();
      const where = `${method} ${path}`;
      const send = (token: string | undefined) =>
        app.request(concrete(path, agentId), {
          method: method.toUpperCase(),
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(operation.requestBody ? { "content-type": "application/json" } : {}),
          },
          // A body no schema takes: refused after auth, so no long-poll starts.
          ...(operation.requestBody ? { body: "[]" } : {}),
        });
      const unauthenticated = (await send(undefined)).status;
      expect(unauthenticated === 401, `${where} without a token → ${unauthenticated}`).toBe(
        roles.length > 0,
      );
      const all = Object.keys(tokenOf) as Role[];
      // Refused roles first, then the allowed ones.
      for (const role of [...all.filter((r) => !roles.includes(r)), ...roles]) {
        const status = (await send(tokenOf[role])).status;
        // The admin token may do all a client may.
        const allowed = roles.length === 0 || roles.includes(role);
        if (allowed) {
          expect([401, 403], `${where} as ${role} → ${status}`).not.toContain(status);
          expect(status, `${where} as ${role}`).toBeLessThan(500);
        } else {
          expect(status, `${where} as ${role}`).toBe(403);
        }
      }
    }
  }, 30_000);

  it("answers a request that breaks a route's schema with that route's 400", async () => {
    const { app, document, tokenOf, agentId } = await setup();
    let checked = 0;
    for (const { method, path, operation, roles } of operationsOf(document)) {
      const token = roles[0] === undefined ? undefined : tokenOf[roles[0]];
      const where = `${method} ${path}`;
      const send = async (url: string, body?: string) => {
        const response = await app.request(url, {
          method: method.toUpperCase(),
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          ...(body === undefined ? {} : { body }),
        });
        return { status: response.status, body: (await response.json()) as Json };
      };
      const expectRefused = (answer: { status: number; body: Json }, what: string) => {
        expect(answer.status, `${where}: ${what}`).toBe(400);
        expect(answer.body.error.code).toBe("VALIDATION_ERROR");
        expect(operation.responses, where).toHaveProperty("400");
        checked++;
      };
      const validBody = operation.requestBody ? "{}" : undefined;
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === "query") {
          // Longer than any query value may be, and no number, state or id.
          const url = `${concrete(path, agentId)}?${parameter.name}=${"%21".repeat(300)}`;
          const answer = await send(url, validBody);
          expectRefused(answer, `query ${parameter.name}`);
          expect(answer.body.error.message).toMatch(
            new RegExp(`^invalid query: ${parameter.name}`),
          );
        } else if (parameter.schema.pattern) {
          const answer = await send(concrete(path, "not%20an%20id"));
          expectRefused(answer, `path parameter ${parameter.name}`);
          expect(answer.body.error.message).toMatch(
            new RegExp(`^invalid path parameter ${parameter.name}: `),
          );
        }
      }
      if (operation.requestBody) {
        const answer = await send(concrete(path, agentId), "[]");
        expectRefused(answer, "an array for a body");
        expect(answer.body.error.message).toMatch(/^invalid (request body|job|batch|user): /);
        // Read by labrun's JSON reader, not refused by a stricter one.
        const text = await app.request(concrete(path, agentId), {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" },
          body: "{}",
        });
        expect(text.status, where).toBe(415);
        expect(((await text.json()) as Json).error.message).toMatch(/^the body must be JSON/);
      }
    }
    expect(checked).toBeGreaterThanOrEqual(10);
  });

  it("is served at /openapi.json without a token, the same on every request", async () => {
    const { app, document } = await setup();
    const again = await app.request("/openapi.json");
    expect(again.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await again.json()).toEqual(document);
  });
});
