import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.js";
import type { Store } from "./store/store.js";
import { hashToken, sameToken, type Tokens } from "./tokens.js";

/** Who is calling, from the bearer token. Admin may do all a client may. */
export type Caller =
  | { role: "client" }
  | { role: "admin" }
  | { role: "join" }
  | { role: "agent"; agentId: string; name: string };

export type Role = Caller["role"];
export type AuthEnv = { Variables: { caller: Caller } };

/** Resolves a bearer token to its caller, or undefined when no token matches. */
export function identify(token: string, tokens: Tokens, store: Store): Caller | undefined {
  // Every fixed token is compared (constant time each), so timing tells nothing.
  const isClient = sameToken(token, tokens.client);
  const isAdmin = sameToken(token, tokens.admin);
  const isJoin = sameToken(token, tokens.agent);
  if (isAdmin) return { role: "admin" };
  if (isClient) return { role: "client" };
  if (isJoin) return { role: "join" };
  // Per-agent tokens are looked up by their hash: the lookup never sees the secret.
  const agent = store.agentByTokenHash(hashToken(token));
  return agent ? { role: "agent", agentId: agent.id, name: agent.name } : undefined;
}

/**
 * Bearer auth: no or unknown token → 401; a valid token of another role → 403.
 * Agent routes also check the token belongs to the `:id` in the path.
 */
export function requireRole(
  tokens: Tokens,
  store: Store,
  ...allowed: Role[]
): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      throw new ApiError("UNAUTHORIZED", "send a token: Authorization: Bearer <token>");
    }
    const caller = identify(match[1], tokens, store);
    if (!caller) throw new ApiError("UNAUTHORIZED", "the token is not valid");
    if (!allowed.includes(caller.role)) {
      throw new ApiError("FORBIDDEN", `a ${caller.role} token may not use this route`);
    }
    const pathAgent = c.req.param("id");
    if (caller.role === "agent" && pathAgent !== undefined && pathAgent !== caller.agentId) {
      throw new ApiError("FORBIDDEN", "an agent token may only act for its own agent");
    }
    c.set("caller", caller);
    await next();
  };
}
