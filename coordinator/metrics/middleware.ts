import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { type CoordinatorMetrics, UNMATCHED_ROUTE } from "./registry.js";

/** Methods kept as they are; any other token is labelled OTHER (labels stay bounded). */
const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/**
 * The route pattern that answered, e.g. `/v1/jobs/:id`, never the raw path
 * (ids would make a series per job). The handler is the last route matched;
 * when only `*` middleware matched (method ALL), no route did.
 */
function routeLabel(routes: ReturnType<typeof matchedRoutes>): string {
  const last = routes.at(-1);
  return last && last.method !== "ALL" ? last.path : UNMATCHED_ROUTE;
}

/**
 * Times every request into `labrun_http_request_duration_seconds`, labelled
 * by method, route pattern and status. Errors are answered by the app's
 * onError before this sees the response, so their status counts too.
 *
 * `answered` is told each request's time too (the app's debug log), so
 * the two share one step of the chain.
 *
 * @example
 * app.use("*", requestMetrics(metrics));
 */
export function requestMetrics(
  metrics: CoordinatorMetrics,
  answered?: (c: Context, ms: number) => void,
): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "OTHER";
    const ms = performance.now() - started;
    metrics.requestAnswered(method, routeLabel(matchedRoutes(c)), c.res.status, ms / 1000);
    answered?.(c, ms);
  };
}
