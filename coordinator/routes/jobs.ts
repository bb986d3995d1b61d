import { Hono } from "hono";
import {
  GetJobQuery,
  isTerminal,
  type Job,
  JobId,
  type JobPage,
  ListJobsQuery,
  MAX_SOURCE_BYTES,
  SubmitJobRequest,
  type SubmitJobResponse,
} from "../../protocol/index.js";
import type { RouteDeps } from "../app.js";
import type { AuthEnv } from "../auth.js";
import { BODY_LIMITS, limitBody } from "../bodyLimits.js";
import { ApiError } from "../errors.js";
import { param, parseWith, query, readJson } from "../validate.js";

/**
 * Too large is 413 whichever part it is, checked before the schema so the
 * answer does not depend on what else is wrong with the body.
 */
function refuseOversized(body: unknown, maxInputBytes: number): void {
  if (typeof body !== "object" || body === null) return;
  const { source, input } = body as { source?: unknown; input?: unknown };
  if (typeof source === "string" && Buffer.byteLength(source, "utf8") > MAX_SOURCE_BYTES) {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `the program is larger than ${MAX_SOURCE_BYTES} bytes; make it smaller`,
    );
  }
  if (input !== undefined && Buffer.byteLength(JSON.stringify(input), "utf8") > maxInputBytes) {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `the input is larger than ${maxInputBytes} bytes of JSON; pass less data`,
    );
  }
}

/** Client routes (client or admin token): submit, read with long-poll, list, cancel. */
export function jobRoutes({ store, notifier, config, clock, auth, metrics }: RouteDeps) {
  const app = new Hono<AuthEnv>();
  app.use("*", auth("client"));

  app.post("/", limitBody(BODY_LIMITS.submit(config.maxInputBytes)), async (c) => {
    const body = await readJson(c);
    refuseOversized(body, config.maxInputBytes);
    const request = parseWith(SubmitJobRequest, body, "job");
    // What the client leaves out, the lab's defaults fill in: the job record
    // shows every limit.
    const limits = { ...config.defaultLimits, ...request.limits };
    const job = store.enqueue({ ...request, limits }, clock());
    notifier.workAvailable(1);
    return c.json({ id: job.id, state: job.state } satisfies SubmitJobResponse, 201);
  });

  app.get("/", (c) => c.json(store.listJobs(query(c, ListJobsQuery)) satisfies JobPage));

  // ?wait=N answers as soon as the job is terminal, or after N seconds with the job as it is.
  app.get("/:id", async (c) => {
    const id = param(c, "id", JobId);
    const { wait } = query(c, GetJobQuery);
    const signal = c.req.raw.signal;
    let job = store.getJob(id);
    const deadline = Date.now() + (wait ?? 0) * 1000;
    while (!isTerminal(job.state) && !notifier.closed && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await notifier.waitForJob(id, left, signal);
      if (notifier.closed) break;
      job = store.getJob(id);
    }
    return c.json(job satisfies Job);
  });

  app.post("/:id/cancel", limitBody(BODY_LIMITS.small), (c) => {
    const { value: job, changed } = store.cancel(param(c, "id", JobId), clock());
    if (changed) {
      metrics.jobsFinished("CANCELLED");
      notifier.jobFinished(job.id);
    }
    return c.json(job satisfies Job);
  });

  return app;
}
