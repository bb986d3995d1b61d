import { Hono } from "hono";
import { API_PREFIX } from "../protocol/index.js";
import type { AuthEnv } from "./auth.js";
import type { Deps } from "./deps.js";
import { ApiError, errorHandler } from "./errors.js";
import { adminRoutes } from "./routes/admin.js";
import { agentRoutes } from "./routes/agents.js";
import { jobRoutes } from "./routes/jobs.js";

/**
 * The coordinator's HTTP API (DESIGN.md §3). Routes only parse, call the
 * store and answer; one onError turns typed errors into `{error:{code,message}}`.
 */
export function createApp(deps: Deps) {
  const app = new Hono<AuthEnv>();
  app.use("*", async (c, next) => {
    const started = performance.now();
    await next();
    deps.logger.debug(
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
  app.get("/readyz", (c) => {
    if (deps.closing()) throw new ApiError("UNAVAILABLE", "the coordinator is shutting down");
    deps.store.ping();
    return c.json({ ok: true });
  });
  app.route(`${API_PREFIX}/jobs`, jobRoutes(deps));
  app.route(`${API_PREFIX}/agents`, agentRoutes(deps));
  app.route(`${API_PREFIX}/admin`, adminRoutes(deps));
  app.notFound((c) =>
    c.json(
      { error: { code: "NOT_FOUND", message: `no route ${c.req.method} ${c.req.path}` } },
      404,
    ),
  );
  app.onError(errorHandler(deps.logger));
  return app;
}
