import { Hono } from "hono";
import { z } from "zod";
import {
  API_ERROR_STATUS,
  API_PREFIX,
  ApiErrorBody,
  type ApiErrorCode,
  ClusterStats,
  GetJobQuery,
  HeartbeatRequest,
  HeartbeatResponse,
  Job,
  JobId,
  JobPage,
  LeaseRequest,
  LeaseResponse,
  ListJobsQuery,
  NodeInfo,
  NodeList,
  RegisterAgentRequest,
  RegisterAgentResponse,
  ResultRequest,
  ResultResponse,
  SubmitJobRequest,
  SubmitJobResponse,
} from "../protocol/index.js";
import type { Role } from "./auth.js";

/** `/healthz` and `/readyz` answer this when they are fine. */
const HealthResponse = z.object({ ok: z.literal(true) });

type Method = "get" | "post" | "delete";

/** What a response carries: a protocol schema as JSON, or a fixed media type. */
type Content = { schema: z.ZodType; name: string } | { mediaType: string; description: string };

/** One route of the API, as the document describes it. */
export interface Operation {
  method: Method;
  /** Hono's form, `:param` for a path parameter (the document writes `{param}`). */
  path: string;
  summary: string;
  /** Tokens that may call it; empty: no token. */
  roles: readonly Role[];
  /** Path parameters, by name. */
  params?: Record<string, z.ZodType>;
  query?: z.ZodObject;
  body?: { schema: z.ZodType; name: string };
  /** The success status and what it carries (undefined: no body). */
  success: [status: number, content: Content | undefined];
  /** Refusals beyond those of the token and the body. */
  errors?: readonly ApiErrorCode[];
}

const JSON_BODY = (schema: z.ZodType, name: string) => ({ schema, name });
const CLIENT: readonly Role[] = ["client", "admin"];
const AGENT: readonly Role[] = ["agent"];
const ADMIN: readonly Role[] = ["admin"];
const AGENT_ID = { id: z.string().describe("the agentId that register returned") };
const NODE_ID = { node: z.string().describe("a node's id, as GET /v1/admin/nodes lists it") };

/**
 * Every route of the coordinator. openapi.test.ts checks this table against
 * the routes the app really has, both ways, so neither can drift.
 */
export const OPERATIONS: readonly Operation[] = [
  {
    method: "get",
    path: "/healthz",
    summary: "Liveness: the process answers.",
    roles: [],
    success: [200, JSON_BODY(HealthResponse, "HealthResponse")],
  },
  {
    method: "get",
    path: "/readyz",
    summary: "Readiness: the database answers and shutdown has not begun (else 503).",
    roles: [],
    success: [200, JSON_BODY(HealthResponse, "HealthResponse")],
    errors: ["UNAVAILABLE"],
  },
  {
    method: "get",
    path: "/openapi.json",
    summary: "This document.",
    roles: [],
    success: [200, { mediaType: "application/json", description: "OpenAPI 3.1 document" }],
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format 0.0.4).",
    roles: ADMIN,
    success: [200, { mediaType: "text/plain; version=0.0.4", description: "Prometheus text" }],
  },
  {
    method: "post",
    path: `${API_PREFIX}/jobs`,
    summary: "Submit a job: a program and its input. Nothing is queued when it is refused.",
    roles: CLIENT,
    body: JSON_BODY(SubmitJobRequest, "SubmitJobRequest"),
    success: [201, JSON_BODY(SubmitJobResponse, "SubmitJobResponse")],
  },
  {
    method: "get",
    path: `${API_PREFIX}/jobs`,
    summary: "A page of jobs, newest first; pass nextCursor as cursor for the next page.",
    roles: CLIENT,
    query: ListJobsQuery,
    success: [200, JSON_BODY(JobPage, "JobPage")],
    errors: ["VALIDATION_ERROR"],
  },
  {
    method: "get",
    path: `${API_PREFIX}/jobs/:id`,
    summary: "One job; with ?wait=N, answers once it is terminal or after N seconds.",
    roles: CLIENT,
    params: { id: JobId },
    query: GetJobQuery,
    success: [200, JSON_BODY(Job, "Job")],
    errors: ["VALIDATION_ERROR", "NOT_FOUND"],
  },
  {
    method: "post",
    path: `${API_PREFIX}/jobs/:id/cancel`,
    summary: "Cancel a job at once; a terminal job is returned unchanged.",
    roles: CLIENT,
    params: { id: JobId },
    success: [200, JSON_BODY(Job, "Job")],
    errors: ["VALIDATION_ERROR", "NOT_FOUND"],
  },
  {
    method: "post",
    path: `${API_PREFIX}/agents/register`,
    summary: "Join the cluster; the answer holds the agent's own token for every later call.",
    roles: ["join"],
    body: JSON_BODY(RegisterAgentRequest, "RegisterAgentRequest"),
    success: [200, JSON_BODY(RegisterAgentResponse, "RegisterAgentResponse")],
  },
  {
    method: "post",
    path: `${API_PREFIX}/agents/:id/lease`,
    summary: "Long-poll for up to `free` jobs; answers with none after waitMs.",
    roles: AGENT,
    params: AGENT_ID,
    body: JSON_BODY(LeaseRequest, "LeaseRequest"),
    success: [200, JSON_BODY(LeaseResponse, "LeaseResponse")],
  },
  {
    method: "post",
    path: `${API_PREFIX}/agents/:id/heartbeat`,
    summary: "Renew the leases the agent runs (and report its stats); answers the ones to stop.",
    roles: AGENT,
    params: AGENT_ID,
    body: JSON_BODY(HeartbeatRequest, "HeartbeatRequest"),
    success: [200, JSON_BODY(HeartbeatResponse, "HeartbeatResponse")],
  },
  {
    method: "post",
    path: `${API_PREFIX}/agents/:id/results`,
    summary: "Report a lease's outcome; idempotent per leaseId, a stale lease is 409.",
    roles: AGENT,
    params: AGENT_ID,
    body: JSON_BODY(ResultRequest, "ResultRequest"),
    success: [200, JSON_BODY(ResultResponse, "ResultResponse")],
    errors: ["STALE_LEASE"],
  },
  {
    method: "delete",
    path: `${API_PREFIX}/agents/:id`,
    summary: "Leave the cluster: the token stops working, held leases are queued again.",
    roles: AGENT,
    params: AGENT_ID,
    success: [204, undefined],
  },
  {
    method: "get",
    path: `${API_PREFIX}/admin/stats`,
    summary: "Jobs by state, jobs finished in the last minute and hour, nodes by state.",
    roles: ADMIN,
    success: [200, JSON_BODY(ClusterStats, "ClusterStats")],
  },
  {
    method: "get",
    path: `${API_PREFIX}/admin/nodes`,
    summary: "Every registered node with its state, slots and jobs.",
    roles: ADMIN,
    success: [200, JSON_BODY(NodeList, "NodeList")],
  },
  {
    method: "post",
    path: `${API_PREFIX}/admin/nodes/:node/drain`,
    summary: "Drain a node: no new leases; it finishes the jobs it has.",
    roles: ADMIN,
    params: NODE_ID,
    success: [200, JSON_BODY(NodeInfo, "NodeInfo")],
    errors: ["NOT_FOUND"],
  },
  {
    method: "post",
    path: `${API_PREFIX}/admin/nodes/:node/resume`,
    summary: "Resume a drained node.",
    roles: ADMIN,
    params: NODE_ID,
    success: [200, JSON_BODY(NodeInfo, "NodeInfo")],
    errors: ["NOT_FOUND"],
  },
  {
    method: "delete",
    path: `${API_PREFIX}/admin/nodes/:node`,
    summary: "Forget a node: its token stops working, its jobs are queued again at once.",
    roles: ADMIN,
    params: NODE_ID,
    success: [204, undefined],
    errors: ["NOT_FOUND"],
  },
];

/** One bearer scheme per kind of token, so each operation says which it takes. */
const SECURITY_SCHEMES: Record<Role, { name: string; description: string }> = {
  client: {
    name: "clientToken",
    description: 'The client token ("client" in <data-dir>/tokens.json).',
  },
  admin: {
    name: "adminToken",
    description: 'The admin token ("admin" in tokens.json); it may also do what a client may.',
  },
  join: {
    name: "agentJoinToken",
    description: 'The agent join token ("agent" in tokens.json), for register only.',
  },
  agent: {
    name: "agentToken",
    description: "The per-agent token register returned; only under that agent's own /:id.",
  },
};

type JsonSchema = Record<string, unknown>;
type Io = "input" | "output";

const COMPONENTS = "#/components/schemas/";

/** `{…}` with every `$ref` rewritten by `rename` (a copy). */
function rewriteRefs(value: unknown, rename: (ref: string) => string): unknown {
  if (Array.isArray(value)) return value.map((item) => rewriteRefs(item, rename));
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) =>
      key === "$ref" && typeof item === "string"
        ? [key, rename(item)]
        : [key, rewriteRefs(item, rename)],
    ),
  );
}

/** A schema's text with references to itself made neutral, to compare schemas by content. */
const canonical = (schema: unknown, selfRef: string) =>
  JSON.stringify(rewriteRefs(schema, (ref) => (ref === selfRef ? "#self" : ref)));

/** zod writes `z.json()` (any JSON value) as a recursive schema; it gets one component. */
const JSON_VALUE = canonical((({ $schema: _, ...rest }) => rest)(z.toJSONSchema(z.json())), "#");

/**
 * The components a document is built from: each protocol schema once under
 * its name, and the recursive definitions zod puts in `$defs` (in OpenAPI a
 * `#/$defs/…` reference would point at the document's root) hoisted beside
 * them under `#/components/schemas/`.
 */
class Components {
  readonly schemas: Record<string, JsonSchema> = {};

  /** A `$ref` to the schema as a request (`input`) or response (`output`) carries it. */
  ref(schema: z.ZodType, name: string, io: Io): JsonSchema {
    this.#put(name, this.#convert(schema, name, io));
    return { $ref: `${COMPONENTS}${name}` };
  }

  /** The schema inline (query and path parameters). */
  inline(schema: z.ZodType, owner: string): JsonSchema {
    return this.#convert(schema, owner, "input");
  }

  #convert(schema: z.ZodType, owner: string, io: Io): JsonSchema {
    const converted = z.toJSONSchema(schema, {
      io,
      unrepresentable: "any",
      // The protocol only ever adds fields to answers: a client generated
      // from this document must not refuse the ones it does not know yet.
      override: ({ jsonSchema }) => {
        if (io === "output" && jsonSchema.additionalProperties === false) {
          delete jsonSchema.additionalProperties;
        }
      },
    }) as JsonSchema;
    const { $schema: _, $defs, ...body } = converted;
    const renamed = new Map<string, string>([["#", `${COMPONENTS}${owner}`]]);
    const defs = Object.entries(($defs ?? {}) as Record<string, JsonSchema>);
    for (const [key, def] of defs) {
      const ref = `#/$defs/${key}`;
      const name =
        canonical(def, ref) === JSON_VALUE ? "JsonValue" : `${owner}_${key.replace(/^_+/, "")}`;
      renamed.set(ref, `${COMPONENTS}${name}`);
    }
    const rename = (ref: string) => renamed.get(ref) ?? ref;
    for (const [key, def] of defs) {
      const target = renamed.get(`#/$defs/${key}`) ?? "";
      this.#put(target.slice(COMPONENTS.length), rewriteRefs(def, rename) as JsonSchema);
    }
    return rewriteRefs(body, rename) as JsonSchema;
  }

  #put(name: string, schema: JsonSchema): void {
    const existing = this.schemas[name];
    if (existing && JSON.stringify(existing) !== JSON.stringify(schema)) {
      throw new Error(`two different schemas would be components/schemas/${name}`);
    }
    this.schemas[name] = schema;
  }
}

/** `/v1/jobs/:id` → `/v1/jobs/{id}`. */
export const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

const errorResponse = (components: Components, codes: ApiErrorCode[]) => ({
  description: `{"error": {code, message, details?}}; code: ${codes.join(" or ")}`,
  content: {
    "application/json": { schema: components.ref(ApiErrorBody, "ApiErrorBody", "output") },
  },
});

/** The refusals an operation can answer, by status. */
function refusals(operation: Operation): Map<number, ApiErrorCode[]> {
  const codes: ApiErrorCode[] = [...(operation.errors ?? [])];
  if (operation.roles.length > 0) codes.push("UNAUTHORIZED", "FORBIDDEN");
  if (operation.body) codes.push("VALIDATION_ERROR", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE");
  const byStatus = new Map<number, ApiErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = API_ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return new Map([...byStatus].sort(([a], [b]) => a - b));
}

function operationObject(operation: Operation, components: Components) {
  const id = `${operation.method} ${operation.path}`;
  const parameters = [
    ...Object.entries(operation.params ?? {}).map(([name, schema]) => ({
      name,
      in: "path",
      required: true,
      schema: components.inline(schema, `${id} ${name}`),
    })),
    ...Object.entries(operation.query?.shape ?? {}).map(([name, schema]) => ({
      name,
      in: "query",
      required: !(schema as z.ZodType).safeParse(undefined).success,
      schema: components.inline(schema as z.ZodType, `${id} ${name}`),
    })),
  ];
  const [status, content] = operation.success;
  const success =
    content === undefined
      ? { description: "done; no body" }
      : "schema" in content
        ? {
            description: content.name,
            content: {
              "application/json": {
                schema: components.ref(content.schema, content.name, "output"),
              },
            },
          }
        : {
            description: content.description,
            content: { [content.mediaType]: { schema: { type: "string" } } },
          };
  const responses: Record<string, unknown> = { [status]: success };
  for (const [errorStatus, codes] of refusals(operation)) {
    responses[errorStatus] = errorResponse(components, codes);
  }
  return {
    summary: operation.summary,
    security: operation.roles.map((role) => ({ [SECURITY_SCHEMES[role].name]: [] })),
    "x-labrun-roles": operation.roles,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(operation.body
      ? {
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: components.ref(operation.body.schema, operation.body.name, "input"),
              },
            },
          },
        }
      : {}),
    responses,
  };
}

/**
 * The OpenAPI 3.1 document of the coordinator's HTTP API, built from the
 * protocol's zod schemas (`z.toJSONSchema`): paths, bodies (requests as
 * clients may send them, answers as the coordinator sends them), the bearer
 * token each route takes, and its refusals.
 *
 * @example
 * const document = buildOpenApiDocument();
 * document.paths["/v1/jobs"].post.requestBody;
 */
export function buildOpenApiDocument() {
  const components = new Components();
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of OPERATIONS) {
    const path = openApiPath(operation.path);
    paths[path] = { ...paths[path], [operation.method]: operationObject(operation, components) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "labrun coordinator",
      version: API_PREFIX.slice(1),
      description:
        "Sandboxed job execution: clients submit programs, agents lease and run them in Docker. " +
        "Send tokens as `Authorization: Bearer <token>`; every error is " +
        '`{"error": {code, message, details?}}`.',
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    paths,
    components: {
      schemas: components.schemas,
      securitySchemes: Object.fromEntries(
        Object.values(SECURITY_SCHEMES).map(({ name, description }) => [
          name,
          { type: "http", scheme: "bearer", description },
        ]),
      ),
    },
  };
}

/**
 * `GET /openapi.json`, no token: the document is public, like the routes'
 * shapes in protocol/. Built on the first request, then kept.
 */
export function openApiRoutes() {
  const app = new Hono();
  let document: ReturnType<typeof buildOpenApiDocument> | undefined;
  app.get("/openapi.json", (c) => {
    document ??= buildOpenApiDocument();
    return c.json(document);
  });
  return app;
}
