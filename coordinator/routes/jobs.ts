import { createRoute, z } from "@hono/zod-openapi";
import {
  GetJobQuery,
  isTerminal,
  Job,
  JobId,
  JobPage,
  ListJobsQuery,
  programBytes,
  programTooLarge,
  SubmitJobRequest,
  SubmitJobResponse,
} from "../../protocol/index.js";
import { BODY_LIMITS } from "../bodyLimits.js";
import { ApiError } from "../errors.js";
import { actingUser, listedOwner, visibleOr404 } from "../ownership.js";
import type { RouteDeps } from "../routeTypes.js";
import { CLIENT, guard, jsonBody, jsonContent, newRouteApp, refusals } from "./declare.js";

/**
 * Too large is 413 whichever part it is, checked before the schema so the
 * answer does not depend on what else is wrong with the body.
 */
const refuseOversized = (maxProgramBytes: number, maxInputBytes: number) => (body: unknown) => {
  if (typeof body !== "object" || body === null) return;
  const bytes = programBytes(body);
  if (bytes !== undefined && bytes > maxProgramBytes) {
    throw new ApiError("PAYLOAD_TOO_LARGE", programTooLarge(bytes, maxProgramBytes), {
      bytes,
      maxBytes: maxProgramBytes,
    });
  }
  const { input } = body as { input?: unknown };
  if (input !== undefined && Buffer.byteLength(JSON.stringify(input), "utf8") > maxInputBytes) {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `the input is larger than ${maxInputBytes} bytes of JSON; pass less data`,
    );
  }
};

const JobPath = z.object({ id: JobId });

/**
 * Client routes (a user's token, or the admin's): submit, read with
 * long-poll, list, cancel. A user sees only their own jobs (ownership.ts).
 */
export function jobRoutes({ store, notifier, config, clock, auth, metrics }: RouteDeps) {
  const app = newRouteApp();

  const submit = createRoute({
    method: "post",
    path: "/v1/jobs",
    summary: "Submit a job: a program and its input. Nothing is queued when it is refused.",
    ...guard(auth, CLIENT, {
      maxBodyBytes: BODY_LIMITS.submit(config.maxProgramBytes, config.maxInputBytes),
      json: { name: "job", check: refuseOversized(config.maxProgramBytes, config.maxInputBytes) },
    }),
    request: { body: jsonBody(SubmitJobRequest) },
    responses: {
      201: jsonContent(SubmitJobResponse, "the job, queued"),
      ...refusals("QUOTA_EXCEEDED"),
    },
  });
  app.openapi(submit, async (c) => {
    const request = c.req.valid("json");
    // What the client leaves out, the lab's defaults fill in: the job record
    // shows every limit.
    const limits = { ...config.defaultLimits, ...request.limits };
    const job = await store.enqueue({ ...request, limits }, clock(), actingUser(c.get("caller")));
    notifier.workAvailable(1);
    return c.json({ id: job.id, state: job.state }, 201);
  });

  const list = createRoute({
    method: "get",
    path: "/v1/jobs",
    summary:
      "A page of the caller's jobs, newest first (the admin token: everyone's, or one user's with user=); pass nextCursor as cursor for the next page.",
    ...guard(auth, CLIENT),
    request: { query: ListJobsQuery },
    responses: { 200: jsonContent(JobPage, "a page of jobs"), ...refusals("FORBIDDEN") },
  });
  app.openapi(list, async (c) => {
    const { user, all, ...query } = c.req.valid("query");
    const owner = listedOwner(c.get("caller"), { user, all });
    return c.json(await store.listJobs({ ...query, owner }), 200);
  });

  // ?wait=N answers as soon as the job is terminal, or after N seconds with the job as it is.
  const read = createRoute({
    method: "get",
    path: "/v1/jobs/{id}",
    summary: "One job; with ?wait=N, answers once it is terminal or after N seconds.",
    ...guard(auth, CLIENT),
    request: { params: JobPath, query: GetJobQuery },
    responses: { 200: jsonContent(Job, "the job"), ...refusals("NOT_FOUND") },
  });
  app.openapi(read, async (c) => {
    const { id } = c.req.valid("param");
    const { wait } = c.req.valid("query");
    const signal = c.req.raw.signal;
    // The job read carries its owner: one read, refused as a missing one would be.
    let job = await store.getJob(id);
    visibleOr404(c.get("caller"), job.owner, `job ${id}`);
    const deadline = Date.now() + (wait ?? 0) * 1000;
    while (!isTerminal(job.state) && !notifier.closed && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await notifier.waitForJob(id, left, signal);
      if (notifier.closed) break;
      job = await store.getJob(id);
    }
    return c.json(job, 200);
  });

  const cancel = createRoute({
    method: "post",
    path: "/v1/jobs/{id}/cancel",
    summary: "Cancel a job at once; a terminal job is returned unchanged.",
    ...guard(auth, CLIENT, { maxBodyBytes: BODY_LIMITS.small }),
    request: { params: JobPath },
    responses: { 200: jsonContent(Job, "the job, cancelled"), ...refusals("NOT_FOUND") },
  });
  app.openapi(cancel, async (c) => {
    const { id } = c.req.valid("param");
    visibleOr404(c.get("caller"), await store.jobOwner(id), `job ${id}`);
    const { value: job, changed } = await store.cancel(id, clock());
    if (changed) {
      metrics.jobsFinished("CANCELLED");
      notifier.jobFinished(job.id);
    }
    return c.json(job, 200);
  });

  return app;
}
