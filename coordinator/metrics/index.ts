/**
 * Prometheus metrics of the coordinator: one registry per app
 * (`registry.ts`), the request timer (`middleware.ts`) and `GET /metrics`
 * (`route.ts`).
 */
export { requestMetrics } from "./middleware.js";
export {
  type CoordinatorMetrics,
  createMetrics,
  type MetricsOptions,
  SUCCEEDED_CODE,
  UNMATCHED_ROUTE,
} from "./registry.js";
export { metricsRoutes } from "./route.js";
