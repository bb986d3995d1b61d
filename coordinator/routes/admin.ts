import { createRoute, z } from "@hono/zod-openapi";
import { ClusterStats, NodeInfo, NodeList } from "../../protocol/index.js";
import { BODY_LIMITS } from "../bodyLimits.js";
import type { RouteDeps } from "../routeTypes.js";
import { ADMIN, guard, jsonContent, newRouteApp, refusals } from "./declare.js";
import { ADMIN_ACTOR } from "./users.js";

const NodePath = z.object({
  node: z.string().describe("a node's id, as GET /v1/admin/nodes lists it"),
});

/**
 * Admin routes (admin token): the cluster's numbers, the nodes, and draining,
 * resuming or forgetting one.
 */
export function adminRoutes({ store, notifier, clock, logger, auth, metrics }: RouteDeps) {
  const app = newRouteApp();
  const admin = guard(auth, ADMIN, { maxBodyBytes: BODY_LIMITS.small });

  const stats = createRoute({
    method: "get",
    path: "/v1/admin/stats",
    summary: "Jobs by state, jobs finished in the last minute and hour, nodes by state.",
    ...admin,
    responses: { 200: jsonContent(ClusterStats, "the cluster's numbers") },
  });
  app.openapi(stats, async (c) => c.json(await store.stats(clock()), 200));

  const nodes = createRoute({
    method: "get",
    path: "/v1/admin/nodes",
    summary: "Every registered node with its state, slots and jobs.",
    ...admin,
    responses: { 200: jsonContent(NodeList, "the nodes") },
  });
  app.openapi(nodes, async (c) => c.json({ nodes: await store.listNodes(clock()) }, 200));

  // A draining node takes no new leases and finishes the jobs it has.
  const drain = createRoute({
    method: "post",
    path: "/v1/admin/nodes/{node}/drain",
    summary: "Drain a node: no new leases; it finishes the jobs it has.",
    ...admin,
    request: { params: NodePath },
    responses: { 200: jsonContent(NodeInfo, "the node, draining"), ...refusals("NOT_FOUND") },
  });
  app.openapi(drain, async (c) => {
    const now = clock();
    const node = await store.setAgentState(c.req.valid("param").node, "draining", now);
    await store.recordAudit(
      { actor: ADMIN_ACTOR, action: "node.drain", target: node.id, details: { name: node.name } },
      now,
    );
    logger.info({ agentId: node.id, name: node.name }, "node draining");
    return c.json(node, 200);
  });

  const resume = createRoute({
    method: "post",
    path: "/v1/admin/nodes/{node}/resume",
    summary: "Resume a drained node.",
    ...admin,
    request: { params: NodePath },
    responses: { 200: jsonContent(NodeInfo, "the node, ready"), ...refusals("NOT_FOUND") },
  });
  app.openapi(resume, async (c) => {
    const now = clock();
    const node = await store.setAgentState(c.req.valid("param").node, "ready", now);
    await store.recordAudit(
      { actor: ADMIN_ACTOR, action: "node.resume", target: node.id, details: { name: node.name } },
      now,
    );
    logger.info({ agentId: node.id, name: node.name }, "node resumed");
    notifier.workAvailable();
    return c.json(node, 200);
  });

  // Its token stops working; the jobs it held are queued again (or fail) at once.
  const remove = createRoute({
    method: "delete",
    path: "/v1/admin/nodes/{node}",
    summary: "Forget a node: its token stops working, its jobs are queued again at once.",
    ...admin,
    request: { params: NodePath },
    responses: { 204: { description: "done; no body" }, ...refusals("NOT_FOUND") },
  });
  app.openapi(remove, async (c) => {
    const agentId = c.req.valid("param").node;
    const now = clock();
    const expired = await store.removeAgent(agentId, now);
    const { requeued, failed } = expired;
    await store.recordAudit(
      {
        actor: ADMIN_ACTOR,
        action: "node.rm",
        target: agentId,
        details: { requeued: requeued.length, failed: failed.length },
      },
      now,
    );
    logger.info({ agentId, requeued: requeued.length, failed: failed.length }, "node removed");
    if (requeued.length > 0) notifier.workAvailable();
    metrics.jobsFinished("NODE_LOST", failed.length);
    notifier.jobsFailed(expired);
    return c.body(null, 204);
  });

  return app;
}
