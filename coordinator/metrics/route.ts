import { Hono } from "hono";
import type { RouteDeps } from "../app.js";
import type { AuthEnv } from "../auth.js";

/**
 * `GET /metrics`: Prometheus text exposition, admin token only (Prometheus
 * sends it with `authorization: {credentials_file: …}` in its scrape config).
 * The numbers are the cluster's (queue depth, node states, throughput): the
 * admin's to see, like `/v1/admin/stats`.
 */
export function metricsRoutes({ metrics, auth }: RouteDeps) {
  const app = new Hono<AuthEnv>();
  app.get("/metrics", auth("admin"), async (c) =>
    c.body(await metrics.scrape(), 200, { "Content-Type": metrics.contentType }),
  );
  return app;
}
