import { zodToOpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import { OpenAPIHono } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import * as protocol from "../../protocol/index.js";
import {
  API_ERROR_STATUS,
  ApiErrorBody,
  type ApiErrorCode,
  JsonValue,
} from "../../protocol/index.js";
import { requestValidationError } from "../errors.js";
import { type JsonBodyOptions, readJsonBody } from "../jsonBody.js";
import type { AuthEnv, Role, RouteDeps } from "../routeTypes.js";
import { limitBodyBySize } from "./bodySize.js";

/**
 * How a coordinator route is declared: once, with `createRoute` from
 * @hono/zod-openapi, registered with `app.openapi(route, handler)`. The one
 * declaration gives the request's validation (body, params, query from the
 * `protocol/` schemas), the handler's types (`c.req.valid("json")`) and the
 * route's entry in `/openapi.json` (and so on `/docs`).
 *
 * The helpers here are the parts every route shares: who may call it and how
 * large its body may be (`guard`), JSON content (`jsonBody`, `jsonContent`),
 * its own refusals (`refusals`). The refusals every route has by its
 * declaration (401/403 for a token, 400/413/415 for a body, 400 for params
 * or a query) are added to the document by openapi.ts; list only the
 * route's own (404, 409, 503).
 *
 * @example
 * // In a route module's factory (routes/*.ts), which gets `auth` from RouteDeps:
 * const app = newRouteApp();
 * const createThing = createRoute({
 *   method: "post",
 *   path: "/v1/things/{id}",
 *   summary: "Create a thing under a job.",
 *   ...guard(auth, CLIENT, { maxBodyBytes: BODY_LIMITS.small, json: {} }),
 *   request: { params: z.object({ id: JobId }), body: jsonBody(CreateThingRequest) },
 *   responses: { 201: jsonContent(Thing, "the thing, created"), ...refusals("NOT_FOUND") },
 * });
 * app.openapi(createThing, (c) => {
 *   const { id } = c.req.valid("param");
 *   return c.json(store.createThing(id, c.req.valid("json")), 201);
 * });
 */

/** Tokens that may call a client route: the admin may do all a client may. */
export const CLIENT: readonly Role[] = ["client", "admin"];
export const ADMIN: readonly Role[] = ["admin"];
export const AGENT: readonly Role[] = ["agent"];
export const JOIN: readonly Role[] = ["join"];
/** No token. */
export const PUBLIC: readonly Role[] = [];

/** One bearer scheme per kind of token, so each operation says which it takes. */
export const SECURITY_SCHEMES: Record<Role, { name: string; description: string }> = {
  client: {
    name: "clientToken",
    description:
      'A user\'s own token (`labrun users add`), or the shared client token ("client" in <data-dir>/tokens.json, the user `default`). A user sees only their own jobs and batches.',
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

/**
 * The app's one validation hook: a request part that fails its route's
 * schema becomes labrun's 400 `{error: {code: VALIDATION_ERROR, message,
 * details}}` (thrown, so onError answers it as every other refusal).
 */
export function validationFailed(
  result: { target: string } & ({ success: true } | { success: false; error: z.ZodError }),
  c: { get: (key: "bodyName") => string | undefined },
): undefined {
  if (!result.success) throw requestValidationError(result.target, result.error, c.get("bodyName"));
  return undefined;
}

/** An app to declare routes on, with the validation hook. Route modules make theirs with this. */
export const newRouteApp = () => new OpenAPIHono<AuthEnv>({ defaultHook: validationFailed });

export interface GuardOptions {
  /** The largest body the route reads, in bytes (413 past it); see bodyLimits.ts. */
  maxBodyBytes?: number;
  /** The route reads a JSON body (415, empty, not JSON, too deep → refused before its schema). */
  json?: JsonBodyOptions;
}

/**
 * Who may call a route and what body it takes, as createRoute's `security`
 * (the document) and `middleware` (the enforcement), in labrun's order:
 * the token first (401/403), then the body's size (413), then its JSON (415/400).
 */
export function guard(
  auth: RouteDeps["auth"],
  roles: readonly Role[],
  { maxBodyBytes, json }: GuardOptions = {},
) {
  const steps: MiddlewareHandler<AuthEnv>[] = [];
  if (roles.length > 0) steps.push(auth(...roles));
  if (maxBodyBytes !== undefined) steps.push(limitBodyBySize(maxBodyBytes));
  if (json) steps.push(readJsonBody(json));
  return {
    security: roles.map((role) => ({ [SECURITY_SCHEMES[role].name]: [] })),
    middleware: steps.length > 1 ? [inOrder(steps)] : steps,
  };
}

/**
 * Middleware run one after the other as one: a step of Hono's chain costs
 * more than a call (its own promise and bookkeeping), and the route's
 * validators and handler are steps of their own already. The steps refuse
 * by throwing (never by answering), so a refusal reaches onError as before.
 */
function inOrder(steps: readonly MiddlewareHandler<AuthEnv>[]): MiddlewareHandler<AuthEnv> {
  return (c, next) => {
    const run = async (index: number): Promise<void> => {
      const step = steps[index];
      if (step === undefined) return next();
      await step(c, () => run(index + 1));
    };
    return run(0);
  };
}

/** The names given so far, to refuse giving one name to two schemas. */
const names = new Map<string, z.ZodType>();

/**
 * Names a schema for the document: every place it occurs there becomes a
 * `$ref` to `components/schemas/<name>`. The name defaults to the schema's
 * export name in protocol/ (`SubmitJobRequest`). Validation is untouched:
 * only the document generator reads this registry. (Not `.openapi(name)`:
 * that method exists only on schemas built after @hono/zod-openapi loaded,
 * and protocol/ builds its schemas without it.)
 */
export function component<T extends z.ZodType>(schema: T, given?: string): T {
  const name = given ?? zodToOpenAPIRegistry.get(schema)?._internal?.refId ?? protocolName(schema);
  const other = names.get(name);
  if (other && other !== schema) throw new Error(`two different schemas would be named ${name}`);
  names.set(name, schema);
  const metadata = zodToOpenAPIRegistry.get(schema);
  zodToOpenAPIRegistry.add(schema, {
    ...metadata,
    _internal: { ...metadata?._internal, refId: name },
  });
  return schema;
}

// z.json() is recursive: named once, every job input and result refers to it.
component(JsonValue);

/** A required JSON request body checked against `schema`. */
export const jsonBody = <T extends z.ZodType>(schema: T, name?: string) => ({
  required: true,
  content: { "application/json": { schema: component(schema, name) } },
});

/** A JSON response of `schema`. */
export const jsonContent = <T extends z.ZodType>(
  schema: T,
  description: string,
  name?: string,
) => ({ description, content: { "application/json": { schema: component(schema, name) } } });

/** Error codes grouped by their HTTP status (API_ERROR_STATUS), in ascending status. */
export function codesByStatus(codes: readonly ApiErrorCode[]): Map<number, ApiErrorCode[]> {
  const byStatus = new Map<number, ApiErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = API_ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return new Map([...byStatus].sort(([a], [b]) => a - b));
}

/** The route's own refusals (beyond token and body), by status, each as `ApiErrorBody`. */
export function refusals(...codes: ApiErrorCode[]) {
  return Object.fromEntries(
    [...codesByStatus(codes)].map(([status, ofStatus]) => [status, errorContent(ofStatus)]),
  );
}

/** The answer of a refusal with one of `codes`. */
export const errorContent = (codes: readonly ApiErrorCode[]) =>
  jsonContent(
    ApiErrorBody,
    `{"error": {code, message, details?}}; code: ${codes.join(" or ")}`,
    "ApiErrorBody",
  );

/** A schema's export name in protocol/. */
function protocolName(schema: z.ZodType): string {
  const found = Object.entries(protocol).find(([, value]) => value === schema);
  if (!found) throw new Error("this schema is not exported by protocol/: give it a name");
  return found[0];
}
