import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.js";
import type { RouteDeps } from "../routeTypes.js";
import { component, jsonContent, newRouteApp, refusals } from "./declare.js";

/** `/healthz` and `/readyz` answer this when they are fine. */
const HealthResponse = component(z.object({ ok: z.literal(true) }), "HealthResponse");

/** Liveness and readiness, no token (load balancers, compose, `labrun doctor`). */
export function healthRoutes({ store, notifier }: RouteDeps) {
  const app = newRouteApp();

  const live = createRoute({
    method: "get",
    path: "/healthz",
    summary: "Liveness: the process answers.",
    security: [],
    responses: { 200: jsonContent(HealthResponse, "alive") },
  });
  app.openapi(live, (c) => c.json({ ok: true as const }, 200));

  // Ready = the database answers and shutdown has not begun.
  const ready = createRoute({
    method: "get",
    path: "/readyz",
    summary: "Readiness: the database answers and shutdown has not begun (else 503).",
    security: [],
    responses: { 200: jsonContent(HealthResponse, "ready"), ...refusals("UNAVAILABLE") },
  });
  app.openapi(ready, async (c) => {
    if (notifier.closed) throw new ApiError("UNAVAILABLE", "the coordinator is shutting down");
    await store.ping();
    return c.json({ ok: true as const }, 200);
  });

  return app;
}
