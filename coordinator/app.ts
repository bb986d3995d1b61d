import { Hono, type MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { API_PREFIX } from "../protocol/index.js";
import { type AuthEnv, bearerAuth, type Role } from "./auth.js";
import type { CoordinatorConfig } from "./config.js";
import { dashboardRoutes } from "./dashboard/index.js";
import { ApiError, errorBody, onError } from "./errors.js";
import {
  type CoordinatorMetrics,
  createMetrics,
  metricsRoutes,
  requestMetrics,
} from "./metrics/index.js";
import type { Notifier } from "./notifier.js";
import { openApiRoutes } from "./openapi.js";
import { adminRoutes } from "./routes/admin.js";
import { agentRoutes } from "./routes/agents.js";
import { jobRoutes } from "./routes/jobs.js";
import type { Store } from "./store/index.js";
import type { Tokens } from "./tokens.js";

export interface CreateAppOptions {
  store: Store;
  notifier: Notifier;
  tokens: Tokens;
  config: CoordinatorConfig;
  logger: Logger;
  /** Time for the store's records (epoch ms); tests move it by hand. Default Date.now. */
  clock?: () => number;
  /** Where routes record events; main.ts shares one with the sweeper. Default: a new registry. */
  metrics?: CoordinatorMetrics;
}

/** What the route modules are built from. */
export interface RouteDeps extends Required<Omit<CreateAppOptions, "tokens">> {
  auth: (...roles: Role[]) => MiddlewareHandler<AuthEnv>;
}

/**
 * The coordinator's HTTP API (DESIGN.md §3). Routes only parse, call the
 * store and the notifier, and answer; `onError` turns every failure into
 * `{error: {code, message, details?}}`.
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
  const app = new Hono<AuthEnv>();

  app.use("*", requestMetrics(deps.metrics));
  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    logger.debug(
      {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - started),
      },
      "request",
    );
  });

  app.get("/healthz", (c) => c.json({ ok: true }));
  // Ready = the database answers and shutdown has not begun.
  app.get("/readyz", (c) => {
    if (notifier.closed) throw new ApiError("UNAVAILABLE", "the coordinator is shutting down");
    store.ping();
    return c.json({ ok: true });
  });

  app.route(`${API_PREFIX}/jobs`, jobRoutes(deps));
  app.route(`${API_PREFIX}/agents`, agentRoutes(deps));
  app.route(`${API_PREFIX}/admin`, adminRoutes(deps));
  app.route("/", metricsRoutes(deps));
  app.route("/", openApiRoutes());
  app.route("/", dashboardRoutes());

  app.notFound((c) =>
    c.json(errorBody("NOT_FOUND", `there is no route ${c.req.method} ${c.req.path}`), 404),
  );
  app.onError(onError(logger));
  return app;
}
