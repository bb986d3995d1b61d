import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import {
  HeartbeatRequest,
  LeaseRequest,
  RegisterAgentRequest,
  ResultRequest,
} from "../../protocol/index.js";
import type { AuthEnv } from "../auth.js";
import type { Deps } from "../deps.js";
import { ApiError, payloadTooLarge } from "../errors.js";
import { hashToken, newToken } from "../tokens.js";
import { jsonBody } from "../validate.js";

const SMALL_BODY = bodyLimit({ maxSize: 64 * 1024, onError: payloadTooLarge });
/** A result carries up to 8 MiB of result JSON and 64 KiB of logs, escaped. */
const RESULT_BODY = bodyLimit({ maxSize: 16 * 1024 * 1024, onError: payloadTooLarge });

/** Agent routes: register (join token), then lease, heartbeat, results (own token). */
export function agentRoutes(deps: Deps) {
  const { store, notifier, config, clock, logger } = deps;
  const app = new Hono<AuthEnv>();

  app.post("/register", deps.auth("join", "admin"), SMALL_BODY, async (c) => {
    const request = await jsonBody(c, RegisterAgentRequest);
    const token = newToken("lrn");
    const agentId = store.registerAgent(request, hashToken(token), clock());
    logger.info({ agentId, name: request.name, slots: request.slots }, "agent registered");
    return c.json({
      agentId,
      token,
      heartbeatMs: config.heartbeatMs,
      leaseTtlMs: config.leaseTtlMs,
    });
  });

  const agent = new Hono<AuthEnv>();
  agent.use("*", deps.auth("agent"), SMALL_BODY);

  agent.post("/lease", async (c) => {
    const caller = c.get("caller");
    if (caller.role !== "agent") throw new ApiError("FORBIDDEN", "agents only");
    const { free, waitMs } = await jsonBody(c, LeaseRequest);
    const self = { id: caller.agentId, name: caller.name };
    const deadline = Date.now() + waitMs;
    for (;;) {
      const jobs = store.lease(self, free, clock());
      if (jobs.length > 0 || free === 0 || Date.now() >= deadline || deps.closing()) {
        return c.json({ jobs });
      }
      await notifier.waitForWork(deadline - Date.now(), c.req.raw.signal);
      if (c.req.raw.signal.aborted) return c.json({ jobs: [] });
    }
  });

  agent.post("/heartbeat", async (c) => {
    const caller = c.get("caller");
    if (caller.role !== "agent") throw new ApiError("FORBIDDEN", "agents only");
    const { running } = await jsonBody(c, HeartbeatRequest);
    return c.json({ cancel: store.heartbeat(caller.agentId, running, clock()) });
  });

  app.post("/:id/results", deps.auth("agent"), RESULT_BODY, async (c) => {
    const caller = c.get("caller");
    if (caller.role !== "agent") throw new ApiError("FORBIDDEN", "agents only");
    const { leaseId, outcome } = await jsonBody(c, ResultRequest);
    const { job, changed } = store.complete(caller.agentId, leaseId, outcome, clock());
    if (changed) notifier.jobFinished(job.id);
    return c.json({ accepted: true });
  });

  app.route("/:id", agent);
  return app;
}
