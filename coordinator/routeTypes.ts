import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { NewBatch } from "../protocol/index.js";
import type { CoordinatorConfig } from "./config.js";
import type { CoordinatorMetrics } from "./metrics/registry.js";
import type { Notifier } from "./notifier.js";
import type { AgentIdentity, Store } from "./store/index.js";
import type { Tokens } from "./tokens.js";

/**
 * The types app.ts and the route modules share. They live here, apart from
 * both, so that app.ts imports the routes and the routes import only this
 * (no import circle).
 */

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

/** Who is calling, from the bearer token. */
export type Caller =
  /** A user's own token, or the shared client token (user `default`). */
  | { role: "client"; user: string }
  | { role: "admin" }
  | { role: "join" }
  | { role: "agent"; agent: AgentIdentity };
export type Role = Caller["role"];

/**
 * The Hono env of every route. `caller`: put there by the auth middleware.
 * `bodyName`: what a validation message calls the route's JSON body
 * ("invalid job: …"); set by the route's JSON reader when it is not
 * "request body". `batch`: a batch body, read by routes/batches.ts.
 */
export type AuthEnv = {
  Variables: { caller: Caller; bodyName?: string; batch?: NewBatch };
};

/** What the route modules are built from. */
export interface RouteDeps extends Required<Omit<CreateAppOptions, "tokens">> {
  /** Bearer auth for the given roles (401/403); see auth.ts. */
  auth: (...roles: Role[]) => MiddlewareHandler<AuthEnv>;
}
