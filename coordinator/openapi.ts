import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { API_PREFIX, type ApiErrorCode } from "../protocol/index.js";
import { codesByStatus, errorContent, newRouteApp, SECURITY_SCHEMES } from "./routes/declare.js";
import type { AuthEnv } from "./routeTypes.js";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"] as const;

type Operation = {
  security?: unknown[];
  parameters?: unknown[];
  requestBody?: unknown;
  responses?: Record<string, unknown>;
};

/**
 * The refusals a route has by its declaration alone: a token (401, 403), a
 * body (400, 413, 415), path or query parameters (400). Routes declare only
 * their own (404, 409, 503); this adds the rest, so no route can forget one.
 */
function sharedRefusals(operation: Operation): Map<number, ApiErrorCode[]> {
  const codes: ApiErrorCode[] = [];
  if ((operation.security ?? []).length > 0) codes.push("UNAUTHORIZED", "FORBIDDEN");
  if (operation.requestBody) {
    codes.push("VALIDATION_ERROR", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE");
  }
  if ((operation.parameters ?? []).length > 0) codes.push("VALIDATION_ERROR");
  return codesByStatus(codes);
}

/**
 * The refusal's answer as the document writes it: a reference to
 * ApiErrorBody, a component since routes declare their own refusals with it.
 */
const refusalObject = (codes: readonly ApiErrorCode[]) => ({
  description: errorContent(codes).description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/ApiErrorBody" } } },
});

/**
 * The OpenAPI 3.1 document of `app`, from the routes declared on it with
 * createRoute: their bodies, parameters and answers (from the protocol's
 * zod schemas), the bearer token each takes, and their refusals.
 *
 * @example
 * const document = buildOpenApiDocument(createApp(options));
 * document.paths["/v1/jobs"].post.requestBody;
 */
export function buildOpenApiDocument(app: OpenAPIHono<AuthEnv>) {
  const registry = app.openAPIRegistry;
  for (const { name, description } of Object.values(SECURITY_SCHEMES)) {
    registry.registerComponent("securitySchemes", name, {
      type: "http",
      scheme: "bearer",
      description,
    });
  }
  const document = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "labrun coordinator",
      version: API_PREFIX.slice(1),
      description:
        "Sandboxed job execution: clients submit programs, agents lease and run them in Docker. " +
        "Send tokens as `Authorization: Bearer <token>`; every error is " +
        '`{"error": {code, message, details?}}`.',
    },
  });
  for (const item of Object.values(document.paths ?? {})) {
    for (const method of METHODS) {
      const operation = item[method] as Operation | undefined;
      if (!operation) continue;
      const responses: Record<string, unknown> = { ...operation.responses };
      for (const [status, codes] of sharedRefusals(operation)) {
        responses[status] ??= refusalObject(codes);
      }
      // By status, success first, as a reader scans them.
      operation.responses = Object.fromEntries(
        Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b)),
      );
      operation.security ??= [];
    }
  }
  return document;
}

/**
 * `GET /openapi.json`, no token: the document is public, like the routes'
 * shapes in protocol/. Built on the first request, then kept.
 */
export function openApiRoutes(documentOf: () => ReturnType<typeof buildOpenApiDocument>) {
  const app = newRouteApp();
  let document: ReturnType<typeof buildOpenApiDocument> | undefined;
  const route = createRoute({
    method: "get",
    path: "/openapi.json",
    summary: "This document (OpenAPI 3.1).",
    security: [],
    responses: {
      200: {
        description: "OpenAPI 3.1 document",
        content: { "application/json": { schema: z.looseObject({ openapi: z.literal("3.1.0") }) } },
      },
    },
  });
  app.openapi(route, (c) => {
    document ??= documentOf();
    return c.json({ ...document, openapi: "3.1.0" as const }, 200);
  });
  return app;
}
