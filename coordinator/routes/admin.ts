import { Hono } from "hono";
import type { AuthEnv } from "../auth.js";
import type { Deps } from "../deps.js";

/** Admin routes (admin token). */
export function adminRoutes(deps: Deps) {
  const app = new Hono<AuthEnv>();
  app.use("*", deps.auth("admin"));
  app.get("/nodes", (c) => c.json({ nodes: deps.store.listNodes(deps.clock()) }));
  return app;
}
