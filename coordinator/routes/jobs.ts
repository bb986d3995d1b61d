import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import {
  GetJobQuery,
  isTerminal,
  JobId,
  ListJobsQuery,
  MAX_INPUT_BYTES,
  MAX_SOURCE_BYTES,
  SubmitJobRequest,
} from "../../protocol/index.js";
import type { AuthEnv } from "../auth.js";
import type { Deps } from "../deps.js";
import { ApiError, payloadTooLarge } from "../errors.js";
import { jsonBody, param, query } from "../validate.js";

/** Submit bodies: a 1 MiB program and 1 MiB input, with room for JSON escaping. */
const SUBMIT_BODY_LIMIT = 4 * 1024 * 1024;

/** Client routes: submit, read (long-poll), list, cancel. */
export function jobRoutes(deps: Deps) {
  const { store, notifier, clock } = deps;
  const app = new Hono<AuthEnv>();
  app.use("*", deps.auth("client", "admin"));

  app.post("/", bodyLimit({ maxSize: SUBMIT_BODY_LIMIT, onError: payloadTooLarge }), async (c) => {
    const request = await jsonBody(c, SubmitJobRequest);
    if (Buffer.byteLength(request.source, "utf8") > MAX_SOURCE_BYTES) {
      throw new ApiError(
        "PAYLOAD_TOO_LARGE",
        `the program is larger than ${MAX_SOURCE_BYTES} bytes`,
      );
    }
    if (Buffer.byteLength(JSON.stringify(request.input ?? null), "utf8") > MAX_INPUT_BYTES) {
      throw new ApiError("PAYLOAD_TOO_LARGE", `the input is larger than ${MAX_INPUT_BYTES} bytes`);
    }
    const job = store.enqueue(request, clock());
    notifier.workAvailable();
    return c.json({ id: job.id, state: job.state }, 201);
  });

  app.get("/", (c) => c.json(store.listJobs(query(c, ListJobsQuery))));

  app.get("/:jobId", async (c) => {
    const id = param(c, "jobId", JobId);
    const { wait } = query(c, GetJobQuery);
    let job = store.getJob(id);
    if (wait && !isTerminal(job.state)) {
      const deadline = Date.now() + wait * 1000;
      while (!isTerminal(job.state) && Date.now() < deadline) {
        await notifier.waitForJob(id, deadline - Date.now(), c.req.raw.signal);
        if (c.req.raw.signal.aborted || deps.closing()) break;
        job = store.getJob(id);
      }
    }
    return c.json(job);
  });

  app.post("/:jobId/cancel", (c) => {
    const id = param(c, "jobId", JobId);
    const { job, changed } = store.cancel(id, clock());
    if (changed) notifier.jobFinished(id);
    return c.json(job);
  });

  return app;
}
