import { timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { DEFAULT_USER } from "../protocol/index.js";
import { ApiError } from "./errors.js";
import type { AuthEnv, Caller, Role } from "./routeTypes.js";
import type { AgentIdentity, Store } from "./store/index.js";
import { type Tokens, tokenDigest, USER_TOKEN_PREFIX } from "./tokens.js";

/** RFC 6750 `Bearer <b64token>`. */
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/** The fixed tokens' digests, computed once per app rather than on every request. */
export interface FixedTokenDigests {
  admin: Buffer;
  client: Buffer;
  agent: Buffer;
}

/** Digests `tokens` for identify(). */
export const fixedTokenDigests = (tokens: Tokens): FixedTokenDigests => ({
  admin: tokenDigest(tokens.admin),
  client: tokenDigest(tokens.client),
  agent: tokenDigest(tokens.agent),
});

/**
 * Resolves a bearer token to its caller; undefined when no token matches.
 * The token is hashed once: its digest is compared with the fixed tokens'
 * (sameToken's comparison, tokens.ts) and, as hex, is hashToken's key of
 * the users' and agents' tokens in the store.
 */
export async function identify(
  token: string,
  fixed: FixedTokenDigests,
  store: Store,
): Promise<Caller | undefined> {
  const digest = tokenDigest(token);
  // All three fixed tokens are compared, each in constant time, so the answer
  // time does not tell which one (if any) was close.
  const isAdmin = timingSafeEqual(digest, fixed.admin);
  const isClient = timingSafeEqual(digest, fixed.client);
  const isJoin = timingSafeEqual(digest, fixed.agent);
  if (isAdmin) return { role: "admin" };
  if (isClient) return { role: "client", user: DEFAULT_USER };
  if (isJoin) return { role: "join" };
  // Users' and agents' tokens are found by their hash; the database never
  // holds the secret. A user's token says so by its prefix (not a secret).
  const hash = digest.toString("hex");
  if (token.startsWith(USER_TOKEN_PREFIX)) {
    const user = await store.userByTokenHash(hash);
    return user ? { role: "client", user: user.name } : undefined;
  }
  const agent = await store.agentByTokenHash(hash);
  return agent ? { role: "agent", agent } : undefined;
}

/** Admin may do everything a client may. */
const allows = (allowed: readonly Role[], role: Role) =>
  allowed.includes(role) || (role === "admin" && allowed.includes("client"));

const WHO: Record<Role, string> = {
  client: "a client (user's) token",
  admin: "the admin token",
  join: "the agent join token",
  agent: "an agent's own token",
};

/**
 * Bearer auth for a route. Missing, malformed or unknown token → 401
 * UNAUTHORIZED; a valid token of another role → 403 FORBIDDEN. Routes under
 * `/v1/agents/:id/…` also require the token of agent `:id` itself.
 *
 * @example
 * const auth = bearerAuth(tokens, store);
 * createRoute({ …, middleware: [auth("admin")] }); // or guard(auth, ADMIN) in routes/declare.ts
 */
export function bearerAuth(tokens: Tokens, store: Store) {
  const fixed = fixedTokenDigests(tokens);
  return (...allowed: Role[]): MiddlewareHandler<AuthEnv> =>
    async (c, next) => {
      const header = c.req.header("authorization");
      if (header === undefined) {
        throw new ApiError("UNAUTHORIZED", "send a token: Authorization: Bearer <token>");
      }
      const token = BEARER.exec(header)?.[1];
      if (token === undefined) {
        throw new ApiError("UNAUTHORIZED", "the Authorization header must be: Bearer <token>");
      }
      const caller = await identify(token, fixed, store);
      if (!caller) throw new ApiError("UNAUTHORIZED", "the token is not valid here");
      if (!allows(allowed, caller.role)) {
        throw new ApiError(
          "FORBIDDEN",
          `this route needs ${allowed.map((role) => WHO[role]).join(" or ")}, not ${WHO[caller.role]}`,
        );
      }
      if (caller.role === "agent" && caller.agent.id !== c.req.param("id")) {
        throw new ApiError("FORBIDDEN", "an agent's token may only act for that agent");
      }
      c.set("caller", caller);
      await next();
    };
}

/** The calling agent on an agent route (auth("agent") ran before). */
export function callingAgent(c: Context<AuthEnv>): AgentIdentity {
  const caller = c.get("caller");
  if (caller.role !== "agent") throw new ApiError("FORBIDDEN", "this route is for agents");
  return caller.agent;
}
