import { bearerAuth } from "./auth.js";
import { dashboardRoutes } from "./dashboard/index.js";
import { errorBody, onError } from "./errors.js";
import { createMetrics, metricsRoutes, requestMetrics } from "./metrics/index.js";
import { buildOpenApiDocument, openApiRoutes } from "./openapi.js";
import { referenceRoutes } from "./reference/index.js";
import { adminRoutes } from "./routes/admin.js";
import { agentRoutes } from "./routes/agents.js";
import { batchRoutes } from "./routes/batches.js";
import { newRouteApp } from "./routes/declare.js";
import { healthRoutes } from "./routes/health.js";
import { jobRoutes } from "./routes/jobs.js";
import { userRoutes } from "./routes/users.js";
import { whoamiRoutes } from "./routes/whoami.js";
import type { CreateAppOptions, RouteDeps } from "./routeTypes.js";

/**
 * The coordinator's HTTP API (DESIGN.md §3). Each route is declared once
 * with createRoute in routes/ (see routes/declare.ts for how to add one);
 * routes only parse, call the store and the notifier, and answer; `onError`
 * turns every failure into `{error: {code, message, details?}}`.
 *
 * @example
 * const app = createApp({ store, notifier, tokens, config, logger });
 * const response = await app.request("/healthz");
 */
export function createApp(options: CreateAppOptions) {
  const { store, notifier, tokens, logger } = options;
  const deps: RouteDeps = {
    ...options,
    clock: options.clock ?? Date.now,
    auth: bearerAuth(tokens, store),
    metrics: options.metrics ?? createMetrics({ store, notifier, clock: options.clock }),
  };
  const app = newRouteApp();

  app.use(
    "*",
    requestMetrics(deps.metrics, (c, ms) => {
      // At the production level (info) a request costs no log record.
      if (!logger.isLevelEnabled("debug")) return;
      logger.debug(
        { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms) },
        "request",
      );
    }),
  );

  for (const routes of [
    healthRoutes,
    jobRoutes,
    batchRoutes,
    agentRoutes,
    adminRoutes,
    userRoutes,
    whoamiRoutes,
    metricsRoutes,
  ]) {
    app.route("/", routes(deps));
  }
  app.route(
    "/",
    openApiRoutes(() => buildOpenApiDocument(app)),
  );
  // Pages for a browser, outside the API's document.
  app.route("/", referenceRoutes());
  app.route("/", dashboardRoutes());

  app.notFound((c) =>
    c.json(errorBody("NOT_FOUND", `there is no route ${c.req.method} ${c.req.path}`), 404),
  );
  app.onError(onError(logger));
  return app;
}
