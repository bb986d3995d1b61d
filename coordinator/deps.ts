import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import type { AuthEnv, Role } from "./auth.js";
import type { CoordinatorConfig } from "./config.js";
import type { Notifier } from "./notifier.js";
import type { Store } from "./store/store.js";
import type { Tokens } from "./tokens.js";

/** What the routes are built from; main.ts wires the real ones, tests their own. */
export interface Deps {
  store: Store;
  notifier: Notifier;
  tokens: Tokens;
  config: CoordinatorConfig;
  logger: Logger;
  clock: () => number;
  auth: (...roles: Role[]) => MiddlewareHandler<AuthEnv>;
  /** True once shutdown began: long-polls answer at once. */
  closing: () => boolean;
}
