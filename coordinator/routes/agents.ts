import { Hono } from "hono";
import {
  HeartbeatRequest,
  type HeartbeatResponse,
  LeaseRequest,
  type LeaseResponse,
  RegisterAgentRequest,
  type RegisterAgentResponse,
  ResultRequest,
  type ResultResponse,
} from "../../protocol/index.js";
import type { RouteDeps } from "../app.js";
import { type AuthEnv, callingAgent } from "../auth.js";
import { BODY_LIMITS, limitBody } from "../bodyLimits.js";
import { hashToken, newToken } from "../tokens.js";
import { jsonBody } from "../validate.js";

const smallBody = limitBody(BODY_LIMITS.small);
const resultBody = limitBody(BODY_LIMITS.result);

/**
 * Agent routes: register with the join token, then lease, heartbeat and
 * results with the agent's own token, only under its own `/:id`.
 */
export function agentRoutes({ store, notifier, config, clock, logger, auth, metrics }: RouteDeps) {
  const app = new Hono<AuthEnv>();

  app.post("/register", auth("join"), smallBody, async (c) => {
    const request = await jsonBody(c, RegisterAgentRequest);
    const token = newToken("lrn");
    const agent = store.registerAgent(request, hashToken(token), clock());
    logger.info({ agentId: agent.id, name: agent.name, slots: request.slots }, "agent registered");
    return c.json({
      agentId: agent.id,
      token,
      heartbeatMs: config.heartbeatMs,
      leaseTtlMs: config.leaseTtlMs,
      defaultLimits: config.defaultLimits,
    } satisfies RegisterAgentResponse);
  });

  // Long-poll: answers as soon as there is work, or after waitMs with none.
  app.post("/:id/lease", auth("agent"), smallBody, async (c) => {
    const agent = callingAgent(c);
    const { free, waitMs } = await jsonBody(c, LeaseRequest);
    const signal = c.req.raw.signal;
    const deadline = Date.now() + waitMs;
    // An aborted request leases nothing: its answer would reach no one.
    while (!signal.aborted && !notifier.closed) {
      const jobs = store.lease(agent.id, free, clock());
      const left = deadline - Date.now();
      if (jobs.length > 0 || free === 0 || left <= 0) {
        return c.json({ jobs } satisfies LeaseResponse);
      }
      await notifier.waitForWork(left, signal);
    }
    return c.json({ jobs: [] } satisfies LeaseResponse);
  });

  app.post("/:id/heartbeat", auth("agent"), smallBody, async (c) => {
    const agent = callingAgent(c);
    const { running, stats } = await jsonBody(c, HeartbeatRequest);
    const cancel = store.heartbeat(agent.id, running, clock());
    if (stats) metrics.agentReported(stats);
    return c.json({ cancel } satisfies HeartbeatResponse);
  });

  app.post("/:id/results", auth("agent"), resultBody, async (c) => {
    const agent = callingAgent(c);
    const { leaseId, outcome } = await jsonBody(c, ResultRequest);
    const { value: job, changed } = store.complete(agent.id, leaseId, outcome, clock());
    if (changed) {
      metrics.resultRecorded(outcome);
      notifier.jobFinished(job.id);
    }
    return c.json({ accepted: true } satisfies ResultResponse);
  });

  // An agent leaving on its own (graceful shutdown): as an admin's remove,
  // its token stops working and the leases it still holds are queued again now
  // rather than after the lease TTL.
  app.delete("/:id", auth("agent"), (c) => {
    const agent = callingAgent(c);
    const { requeued, failed } = store.removeAgent(agent.id, clock());
    logger.info({ agentId: agent.id, requeued: requeued.length }, "agent left the cluster");
    if (requeued.length > 0) notifier.workAvailable(requeued.length);
    metrics.jobsFinished("NODE_LOST", failed.length);
    for (const id of failed) notifier.jobFinished(id);
    return c.body(null, 204);
  });

  return app;
}
