import { createRoute } from "@hono/zod-openapi";
import { WhoAmI } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import type { RouteDeps } from "../routeTypes.js";
import { CLIENT, guard, jsonContent, newRouteApp } from "./declare.js";

/**
 * `GET /v1/whoami`: the caller's role and user, so a page (the dashboard)
 * can say who is signed in and offer only what that token may read.
 */
export function whoamiRoutes({ auth }: RouteDeps) {
  const app = newRouteApp();

  const whoami = createRoute({
    method: "get",
    path: "/v1/whoami",
    summary:
      "Whom the token belongs to: a user (their own token, or the shared client token as `default`) or the admin.",
    ...guard(auth, CLIENT),
    responses: { 200: jsonContent(WhoAmI, "the caller's role, and their user name") },
  });
  app.openapi(whoami, (c) => {
    const caller = c.get("caller");
    if (caller.role === "client")
      return c.json({ role: "client" as const, user: caller.user }, 200);
    if (caller.role === "admin") return c.json({ role: "admin" as const }, 200);
    // guard(CLIENT) lets no other role through.
    throw new ApiError("FORBIDDEN", "this route is for a user's token or the admin token");
  });

  return app;
}
