import { createRoute, z } from "@hono/zod-openapi";
import { ADMIN, guard, newRouteApp } from "../routes/declare.js";
import type { RouteDeps } from "../routeTypes.js";

/**
 * `GET /metrics`: Prometheus text exposition, admin token only (Prometheus
 * sends it with `authorization: {credentials_file: …}` in its scrape config).
 * The numbers are the cluster's (queue depth, node states, throughput): the
 * admin's to see, like `/v1/admin/stats`.
 */
export function metricsRoutes({ metrics, auth }: RouteDeps) {
  const app = newRouteApp();
  const scrape = createRoute({
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics (text exposition format 0.0.4).",
    ...guard(auth, ADMIN),
    responses: {
      200: {
        description: "Prometheus text",
        content: { "text/plain; version=0.0.4": { schema: z.string() } },
      },
    },
  });
  app.openapi(scrape, async (c) =>
    c.text(await metrics.scrape(), 200, { "Content-Type": metrics.contentType }),
  );
  return app;
}
