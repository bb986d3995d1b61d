import { createRoute, z } from "@hono/zod-openapi";
import {
  AddUserRequest,
  AuditPage,
  ListAuditQuery,
  RemoveUserResponse,
  UserList,
  UserName,
  UserToken,
} from "../../protocol/index.js";
import { BODY_LIMITS } from "../bodyLimits.js";
import type { RouteDeps } from "../routeTypes.js";
import { hashToken, newToken, USER_TOKEN_PREFIX } from "../tokens.js";
import { ADMIN, guard, jsonBody, jsonContent, newRouteApp, refusals } from "./declare.js";

const UserPath = z.object({ name: UserName });

/** Who did an admin action: today only the admin token can. */
export const ADMIN_ACTOR = "admin";

/** A fresh user token: its prefix tells auth to look among users. */
const newUserToken = () => newToken(USER_TOKEN_PREFIX.slice(0, -1));

/**
 * Admin routes for users (admin token): add (the token is shown once),
 * list with usage and quotas, remove, rotate a token; and the audit log of
 * admin actions. Every change is recorded in the audit log.
 */
export function userRoutes({ store, notifier, clock, logger, auth, metrics }: RouteDeps) {
  const app = newRouteApp();
  const admin = guard(auth, ADMIN, { maxBodyBytes: BODY_LIMITS.small });

  const add = createRoute({
    method: "post",
    path: "/v1/admin/users",
    summary: "Add a user: answers their token, once (the coordinator keeps only its sha256 hash).",
    ...guard(auth, ADMIN, { maxBodyBytes: BODY_LIMITS.small, json: { name: "user" } }),
    request: { body: jsonBody(AddUserRequest) },
    responses: {
      201: jsonContent(UserToken, "the user's name and token"),
      ...refusals("CONFLICT"),
    },
  });
  app.openapi(add, async (c) => {
    const user = c.req.valid("json");
    const token = newUserToken();
    const now = clock();
    await store.addUser(user, hashToken(token), now);
    const { name, ...quotas } = user;
    await store.recordAudit(
      { actor: ADMIN_ACTOR, action: "user.add", target: name, details: quotas },
      now,
    );
    logger.info({ user: name }, "user added");
    return c.json({ name, token }, 201);
  });

  const list = createRoute({
    method: "get",
    path: "/v1/admin/users",
    summary: "Every user with their running and queued jobs, decayed usage, share and quotas.",
    ...admin,
    responses: { 200: jsonContent(UserList, "the users") },
  });
  app.openapi(list, async (c) => c.json({ users: await store.listUsers(clock()) }, 200));

  const remove = createRoute({
    method: "delete",
    path: "/v1/admin/users/{name}",
    summary:
      "Remove a user: their token is refused at once, their queued jobs are cancelled, their running jobs finish.",
    ...admin,
    request: { params: UserPath },
    responses: {
      200: jsonContent(RemoveUserResponse, "what was cancelled, and how many still run"),
      ...refusals("NOT_FOUND", "CONFLICT"),
    },
  });
  app.openapi(remove, async (c) => {
    const { name } = c.req.valid("param");
    const now = clock();
    const removed = await store.removeUser(name, now);
    const answer = { name, cancelled: removed.cancelled.length, running: removed.running };
    await store.recordAudit(
      {
        actor: ADMIN_ACTOR,
        action: "user.rm",
        target: name,
        details: { cancelled: answer.cancelled, running: answer.running },
      },
      now,
    );
    metrics.jobsFinished("CANCELLED", removed.cancelled.length);
    for (const id of removed.cancelled) notifier.jobFinished(id);
    logger.info(answer, "user removed");
    return c.json(answer, 200);
  });

  const rotate = createRoute({
    method: "post",
    path: "/v1/admin/users/{name}/token",
    summary: "Give a user a new token (answered once); the old one is refused at once.",
    ...admin,
    request: { params: UserPath },
    responses: {
      200: jsonContent(UserToken, "the user's name and new token"),
      ...refusals("NOT_FOUND", "CONFLICT"),
    },
  });
  app.openapi(rotate, async (c) => {
    const { name } = c.req.valid("param");
    const token = newUserToken();
    const now = clock();
    await store.rotateUserToken(name, hashToken(token));
    await store.recordAudit({ actor: ADMIN_ACTOR, action: "user.rotate", target: name }, now);
    logger.info({ user: name }, "user token rotated");
    return c.json({ name, token }, 200);
  });

  const audit = createRoute({
    method: "get",
    path: "/v1/admin/audit",
    summary:
      "The audit log, newest first: user add, rm and rotate; node drain, resume and rm — who, when, what.",
    ...admin,
    request: { query: ListAuditQuery },
    responses: { 200: jsonContent(AuditPage, "a page of the audit log") },
  });
  app.openapi(audit, async (c) => c.json(await store.listAudit(c.req.valid("query")), 200));

  return app;
}
