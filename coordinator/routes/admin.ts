import { Hono } from "hono";
import type { ClusterStats, NodeInfo, NodeList } from "../../protocol/index.js";
import type { RouteDeps } from "../app.js";
import type { AuthEnv } from "../auth.js";
import { BODY_LIMITS, limitBody } from "../bodyLimits.js";

/**
 * Admin routes (admin token): the cluster's numbers, the nodes, and draining,
 * resuming or forgetting one.
 */
export function adminRoutes({ store, notifier, clock, logger, auth, metrics }: RouteDeps) {
  const app = new Hono<AuthEnv>();
  app.use("*", auth("admin"), limitBody(BODY_LIMITS.small));

  app.get("/stats", (c) => c.json(store.stats(clock()) satisfies ClusterStats));

  app.get("/nodes", (c) => c.json({ nodes: store.listNodes(clock()) } satisfies NodeList));

  // A draining node takes no new leases and finishes the jobs it has.
  app.post("/nodes/:node/drain", (c) => {
    const node = store.setAgentState(c.req.param("node"), "draining", clock());
    logger.info({ agentId: node.id, name: node.name }, "node draining");
    return c.json(node satisfies NodeInfo);
  });

  app.post("/nodes/:node/resume", (c) => {
    const node = store.setAgentState(c.req.param("node"), "ready", clock());
    logger.info({ agentId: node.id, name: node.name }, "node resumed");
    notifier.workAvailable();
    return c.json(node satisfies NodeInfo);
  });

  // Its token stops working; the jobs it held are queued again (or fail) at once.
  app.delete("/nodes/:node", (c) => {
    const agentId = c.req.param("node");
    const { requeued, failed } = store.removeAgent(agentId, clock());
    logger.info({ agentId, requeued: requeued.length, failed: failed.length }, "node removed");
    if (requeued.length > 0) notifier.workAvailable();
    metrics.jobsFinished("NODE_LOST", failed.length);
    for (const id of failed) notifier.jobFinished(id);
    return c.body(null, 204);
  });

  return app;
}
