import { createRoute, z } from "@hono/zod-openapi";
import {
  HeartbeatRequest,
  HeartbeatResponse,
  LeaseRequest,
  LeaseResponse,
  type Outcome,
  RegisterAgentRequest,
  RegisterAgentResponse,
  ResultGroupRequest,
  ResultGroupResponse,
  ResultRequest,
  ResultResponse,
} from "../../protocol/index.js";
import { callingAgent } from "../auth.js";
import { BODY_LIMITS } from "../bodyLimits.js";
import type { RouteDeps } from "../routeTypes.js";
import { storedJsonAnswer } from "../storedJson.js";
import { hashToken, newToken } from "../tokens.js";
import { AGENT, guard, JOIN, jsonBody, jsonContent, newRouteApp, refusals } from "./declare.js";
import { renewLateLeases } from "./lateLeases.js";

/** Checked by auth (the token must be agent `:id`'s own), not by a schema. */
const AgentPath = z.object({ id: z.string().describe("the agentId that register returned") });

/**
 * Agent routes: register with the join token, then lease, heartbeat and
 * results with the agent's own token, only under its own `/:id`.
 */
export function agentRoutes({ store, notifier, config, clock, logger, auth, metrics }: RouteDeps) {
  const app = newRouteApp();
  const small = { maxBodyBytes: BODY_LIMITS.small, json: {} };

  const register = createRoute({
    method: "post",
    path: "/v1/agents/register",
    summary: "Join the cluster; the answer holds the agent's own token for every later call.",
    ...guard(auth, JOIN, small),
    request: { body: jsonBody(RegisterAgentRequest) },
    responses: { 200: jsonContent(RegisterAgentResponse, "the agent's id and token") },
  });
  app.openapi(register, async (c) => {
    const request = c.req.valid("json");
    const token = newToken("lrn");
    const agent = await store.registerAgent(request, hashToken(token), clock());
    logger.info({ agentId: agent.id, name: agent.name, slots: request.slots }, "agent registered");
    return c.json(
      {
        agentId: agent.id,
        token,
        heartbeatMs: config.heartbeatMs,
        leaseTtlMs: config.leaseTtlMs,
        defaultLimits: config.defaultLimits,
      },
      200,
    );
  });

  // Long-poll: answers as soon as there is work, or after waitMs with none.
  const lease = createRoute({
    method: "post",
    path: "/v1/agents/{id}/lease",
    summary: "Long-poll for up to `free` jobs; answers with none after waitMs.",
    ...guard(auth, AGENT, small),
    request: { params: AgentPath, body: jsonBody(LeaseRequest) },
    responses: { 200: jsonContent(LeaseResponse, "the jobs leased, maybe none") },
  });
  app.openapi(lease, async (c) => {
    const agent = callingAgent(c);
    const { free, waitMs } = c.req.valid("json");
    const signal = c.req.raw.signal;
    const deadline = Date.now() + waitMs;
    // An aborted request leases nothing: its answer would reach no one.
    while (!signal.aborted && !notifier.closed) {
      const leasedAt = clock();
      const leased = await store.lease(agent.id, free, leasedAt);
      const jobs = await renewLateLeases(
        store,
        agent.id,
        leased,
        leasedAt,
        clock(),
        config.leaseTtlMs,
      );
      const left = deadline - Date.now();
      // The jobs' programs go out as the store kept them (storedJson.ts).
      if (jobs.length > 0 || free === 0 || left <= 0) {
        return storedJsonAnswer<LeaseResponse>(c, { jobs });
      }
      await notifier.waitForWork(left, signal, agent.id);
    }
    return c.json({ jobs: [] }, 200);
  });

  const heartbeat = createRoute({
    method: "post",
    path: "/v1/agents/{id}/heartbeat",
    summary: "Renew the leases the agent runs (and report its stats); answers the ones to stop.",
    ...guard(auth, AGENT, small),
    request: { params: AgentPath, body: jsonBody(HeartbeatRequest) },
    responses: { 200: jsonContent(HeartbeatResponse, "the leases to cancel") },
  });
  app.openapi(heartbeat, async (c) => {
    const agent = callingAgent(c);
    const { running, stats } = c.req.valid("json");
    const cancel = await store.heartbeat(agent.id, running, clock());
    if (stats) metrics.agentReported(stats);
    return c.json({ cancel }, 200);
  });

  const results = createRoute({
    method: "post",
    path: "/v1/agents/{id}/results",
    summary: "Report a lease's outcome; idempotent per leaseId, a stale lease is 409.",
    ...guard(auth, AGENT, { maxBodyBytes: BODY_LIMITS.result, json: {} }),
    request: { params: AgentPath, body: jsonBody(ResultRequest) },
    responses: { 200: jsonContent(ResultResponse, "accepted"), ...refusals("STALE_LEASE") },
  });
  app.openapi(results, async (c) => {
    const agent = callingAgent(c);
    const { leaseId, outcome } = c.req.valid("json");
    const { value: job, changed } = await store.complete(agent.id, leaseId, outcome, clock());
    if (changed) recorded(job, outcome);
    notifier.slotsFreed(agent.id);
    return c.json({ accepted: true }, 200);
  });

  const resultGroup = createRoute({
    method: "post",
    path: "/v1/agents/{id}/results/group",
    summary:
      "Report many leases' outcomes in one request and one commit; each is taken or refused (stale) on its own, as a single report would be.",
    ...guard(auth, AGENT, { maxBodyBytes: BODY_LIMITS.resultGroup, json: {} }),
    request: { params: AgentPath, body: jsonBody(ResultGroupRequest) },
    responses: { 200: jsonContent(ResultGroupResponse, "each result's answer, in order") },
  });
  app.openapi(resultGroup, async (c) => {
    const agent = callingAgent(c);
    const { results } = c.req.valid("json");
    const answers = await store.completeMany(agent.id, results, clock());
    const outcomes = new Map(results.map((result) => [result.leaseId, result.outcome]));
    notifier.slotsFreed(agent.id);
    return c.json(
      {
        results: answers.map((answer) => {
          if ("refused" in answer) {
            const { code, message } = answer.refused;
            return { leaseId: answer.leaseId, accepted: false, error: { code, message } };
          }
          const outcome = outcomes.get(answer.leaseId);
          if (answer.changed && outcome) recorded(answer.value, outcome);
          return { leaseId: answer.leaseId, accepted: true };
        }),
      },
      200,
    );
  });

  /**
   * A result taken: readers of the job and of its batch are woken, and an
   * item queued again (its retry) wakes a lease.
   */
  function recorded(job: { id: string; state: string; batchId?: string | null }, outcome: Outcome) {
    metrics.resultRecorded(outcome);
    notifier.jobFinished(job.id);
    if (job.batchId) notifier.batchProgress(job.batchId);
    if (job.state === "queued") notifier.workAvailable(1);
  }

  // An agent leaving on its own (graceful shutdown): as an admin's remove,
  // its token stops working and the leases it still holds are queued again now
  // rather than after the lease TTL.
  const leave = createRoute({
    method: "delete",
    path: "/v1/agents/{id}",
    summary: "Leave the cluster: the token stops working, held leases are queued again.",
    ...guard(auth, AGENT),
    request: { params: AgentPath },
    responses: { 204: { description: "done; no body" } },
  });
  app.openapi(leave, async (c) => {
    const agent = callingAgent(c);
    const expired = await store.removeAgent(agent.id, clock());
    const { requeued, failed } = expired;
    logger.info({ agentId: agent.id, requeued: requeued.length }, "agent left the cluster");
    if (requeued.length > 0) notifier.workAvailable(requeued.length);
    metrics.jobsFinished("NODE_LOST", failed.length);
    notifier.jobsFailed(expired);
    return c.body(null, 204);
  });

  return app;
}
