import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { RegisterAgentResponse } from "../protocol/index.js";
import { createApp } from "./app.js";
import type { Role } from "./auth.js";
import { Notifier } from "./notifier.js";
import { buildOpenApiDocument, OPERATIONS, openApiPath } from "./openapi.js";
import { openTempCoordinator } from "./test-support/temp-coordinator.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function setup() {
  const { config, store, tokens, close } = openTempCoordinator("openapi");
  cleanups.push(close);
  const app = createApp({
    store,
    notifier: new Notifier(),
    tokens,
    config,
    logger: pino({ level: "silent" }),
  });
  return { app, tokens };
}

// biome-ignore lint/suspicious/noExplicitAny: the test walks the document as plain JSON
type Json = any;

const document: Json = buildOpenApiDocument();
const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];

/** `GET /v1/jobs/{id}` for each operation of the document. */
const documented = () =>
  Object.entries(document.paths as Record<string, Record<string, unknown>>).flatMap(
    ([path, item]) =>
      Object.keys(item)
        .filter((key) => METHODS.includes(key))
        .map((method) => `${method.toUpperCase()} ${path}`),
  );

/**
 * The dashboard's page and its static files (coordinator/dashboard/): HTML
 * and scripts for a browser, not part of the JSON API the document describes.
 */
const isDashboardFile = (path: string) => path === "/" || path.startsWith("/dashboard/");

describe("the OpenAPI document", () => {
  it("describes exactly the routes the app has, no more and no fewer", () => {
    const { app } = setup();
    const real = new Set(
      app.routes
        // Middleware (app.use) is registered for method ALL; it is no route of its own.
        .filter((route) => route.method !== "ALL" && !isDashboardFile(route.path))
        .map((route) => `${route.method} ${openApiPath(route.path)}`),
    );
    expect([...real].sort()).toEqual([...new Set(documented())].sort());
    expect(documented()).toHaveLength(real.size);
  });

  it("is served at /openapi.json without a token", async () => {
    const { app } = setup();
    const response = await app.request("/openapi.json");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await response.json()).toEqual(JSON.parse(JSON.stringify(document)));
  });

  it("is OpenAPI 3.1 whose every $ref resolves inside the document", () => {
    expect(document.openapi).toBe("3.1.0");
    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (typeof value === "object" && value !== null) {
        for (const [key, item] of Object.entries(value)) {
          if (key === "$ref") refs.push(item as string);
          else if (key === "$schema" || key === "$defs")
            throw new Error(`${key} left in the document`);
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
    expect(document.components.schemas.JsonValue.anyOf).toContainEqual({
      type: "array",
      items: { $ref: "#/components/schemas/JsonValue" },
    });
  });

  it("shows request bodies as a client may send them and answers as they may grow", () => {
    const schemas = document.components.schemas;
    // LeaseRequest.waitMs has a default: a client may leave it out.
    expect(schemas.LeaseRequest.required).toEqual(["free"]);
    expect(schemas.LeaseRequest.additionalProperties).toBe(false);
    // The protocol only adds fields to answers; clients must not refuse new ones.
    expect(schemas.Job.additionalProperties).toBeUndefined();
    expect(schemas.Job.required).toContain("state");
    expect(schemas.HeartbeatRequest.required).toEqual(["running"]);
    expect(schemas.HeartbeatRequest.properties.stats.properties).toHaveProperty("containerStartMs");
    expect(schemas.ClusterStats.properties.jobs.required).toEqual([
      "queued",
      "leased",
      "running",
      "succeeded",
      "failed",
      "cancelled",
    ]);
    const list = document.paths["/v1/jobs"].get.parameters;
    expect(list.map((p: Json) => [p.name, p.in, p.required])).toEqual([
      ["state", "query", false],
      ["limit", "query", false],
      ["cursor", "query", false],
    ]);
    const get = document.paths["/v1/jobs/{id}"].get;
    expect(get.parameters[0]).toMatchObject({ name: "id", in: "path", required: true });
    expect(get.responses["404"].content["application/json"].schema.$ref).toBe(
      "#/components/schemas/ApiErrorBody",
    );
  });

  it("names the bearer token each route takes, as the app enforces it", async () => {
    const schemes = document.components.securitySchemes;
    for (const scheme of Object.values(schemes) as Json[]) {
      expect(scheme).toMatchObject({ type: "http", scheme: "bearer" });
    }
    for (const operation of OPERATIONS) {
      const { app, tokens } = setup();
      const send = (token: string | undefined, path: string) =>
        app.request(path, {
          method: operation.method.toUpperCase(),
          headers: {
            ...(token ? { authorization: `Bearer ${token}` } : {}),
            ...(operation.body ? { "content-type": "application/json" } : {}),
          },
          // An empty object: refused by every schema after auth, so no long-poll starts.
          ...(operation.body ? { body: "{}" } : {}),
        });
      const registered = RegisterAgentResponse.parse(
        await (
          await app.request("/v1/agents/register", {
            method: "POST",
            headers: {
              authorization: `Bearer ${tokens.agent}`,
              "content-type": "application/json",
            },
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
      const path = operation.path
        .replace(":id", registered.agentId)
        .replace(":node", registered.agentId);
      const where = `${operation.method} ${operation.path}`;
      const item = document.paths[openApiPath(operation.path)][operation.method];
      // One alternative per token that may call it; none (security: []) for public routes.
      expect(item["x-labrun-roles"], where).toEqual(operation.roles);
      const schemeNames = item.security.flatMap((entry: Json) => Object.keys(entry));
      expect(schemeNames, where).toHaveLength(operation.roles.length);
      for (const name of schemeNames) expect(schemes, where).toHaveProperty(name);

      const unauthenticated = (await send(undefined, path)).status;
      expect(unauthenticated === 401, `${where} without a token → ${unauthenticated}`).toBe(
        operation.roles.length > 0,
      );
      // Refused roles first: an allowed call may remove the agent (DELETE) and its token.
      const roles = Object.keys(tokenOf) as Role[];
      const ordered = [
        ...roles.filter((role) => !operation.roles.includes(role)),
        ...roles.filter((role) => operation.roles.includes(role)),
      ];
      for (const role of ordered) {
        const status = (await send(tokenOf[role], path)).status;
        if (operation.roles.length === 0 || operation.roles.includes(role)) {
          expect([401, 403], `${where} as ${role} → ${status}`).not.toContain(status);
          expect(status, `${where} as ${role}`).toBeLessThan(500);
        } else {
          expect(status, `${where} as ${role}`).toBe(403);
        }
      }
    }
  });
});
