import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { stream } from "hono/streaming";
import {
  Batch,
  BatchId,
  BatchPage,
  BatchResultsQuery,
  BatchSummary,
  ItemResult,
  ListBatchesQuery,
  NDJSON,
  RetryBatchResponse,
  SubmitBatchRequest,
  SubmitBatchResponse,
} from "../../protocol/index.js";
import { type BatchBounds, readBatch } from "../batchBody.js";
import { BatchSummaries } from "../batchSummary.js";
import { BODY_LIMITS } from "../bodyLimits.js";
import { actingUser, listedOwner, visibleOr404 } from "../ownership.js";
import type { AuthEnv, RouteDeps } from "../routeTypes.js";
import { CLIENT, component, guard, jsonContent, newRouteApp, refusals } from "./declare.js";

const BatchPath = z.object({ id: BatchId });

/**
 * Reads a batch body (JSON or NDJSON, streamed, each bad item refused with
 * its index) into `c.get("batch")`, after the guard's token and size checks.
 * The body is then marked NDJSON for @hono/zod-openapi's validator, which
 * passes a body it does not parse: a 100,000-item batch is checked once,
 * by readBatch, not a second time by SubmitBatchRequest's z.json() per input.
 */
function withBatchBody(
  guarded: ReturnType<typeof guard>,
  bounds: BatchBounds,
): ReturnType<typeof guard> {
  const readBatchBody: MiddlewareHandler<AuthEnv> = async (c, next) => {
    const batch = await readBatch(
      { contentType: c.req.header("content-type"), text: () => c.req.text(), body: c.req.raw.body },
      bounds,
    );
    c.set("batch", batch);
    c.set("bodyName", "batch");
    c.req.raw.headers.set("content-type", NDJSON);
    await next();
  };
  return { ...guarded, middleware: [...guarded.middleware, readBatchBody] };
}

/** How long a results stream waits for an item to end before it looks again anyway. */
const STREAM_IDLE_MS = 15_000;

/**
 * Batch routes (client or admin token): submit one program over many
 * inputs, read its counts, stream its results, cancel it, retry its
 * failures. Each item is a job of its own (`GET /v1/jobs/:id`).
 */
export function batchRoutes({ store, notifier, config, clock, auth, metrics }: RouteDeps) {
  const app = newRouteApp();
  const summaries = new BatchSummaries(store, clock);

  const submit = createRoute({
    method: "post",
    path: "/v1/batches",
    summary:
      "Submit a batch: one program over many inputs, as one JSON document or as NDJSON (the spec on the first line, then one input per line). A bad item refuses the whole batch, with its index; nothing is queued.",
    ...withBatchBody(
      guard(auth, CLIENT, { maxBodyBytes: BODY_LIMITS.batch(config.maxBatchBytes) }),
      {
        maxItems: config.maxBatchItems,
        maxInputBytes: config.maxInputBytes,
        maxProgramBytes: config.maxProgramBytes,
      },
    ),
    request: {
      body: {
        // Either media type; readBatchBody has read and checked it already.
        required: false,
        content: {
          "application/json": { schema: component(SubmitBatchRequest) },
          [NDJSON]: {
            schema: {
              type: "string",
              description:
                "Line 1: the SubmitBatchRequest without inputs; then one input (any JSON value) per line.",
            },
          },
        },
      },
    },
    responses: {
      201: jsonContent(SubmitBatchResponse, "the batch, every item queued"),
      ...refusals("QUOTA_EXCEEDED"),
    },
  });
  app.openapi(submit, async (c) => {
    const batch = c.get("batch");
    if (!batch) throw new Error("readBatchBody did not run");
    const limits = { ...config.defaultLimits, ...batch.spec.limits };
    const queued = await store.enqueueBatch(batch, limits, clock(), actingUser(c.get("caller")));
    notifier.workAvailable(queued.total);
    return c.json(queued, 201);
  });

  const list = createRoute({
    method: "get",
    path: "/v1/batches",
    summary:
      "A page of the caller's batches, newest first, each with its counts (the admin token: everyone's, or one user's with user=).",
    ...guard(auth, CLIENT),
    request: { query: ListBatchesQuery },
    responses: { 200: jsonContent(BatchPage, "a page of batches"), ...refusals("FORBIDDEN") },
  });
  app.openapi(list, async (c) => {
    const { user, all, ...query } = c.req.valid("query");
    const owner = listedOwner(c.get("caller"), { user, all });
    return c.json(await store.listBatches({ ...query, owner }), 200);
  });
  /** 404 for a batch the caller may not see, as for one that does not exist. */
  const visible = async (caller: Parameters<typeof visibleOr404>[0], id: string) =>
    visibleOr404(caller, await store.batchOwner(id), `batch ${id}`);

  const read = createRoute({
    method: "get",
    path: "/v1/batches/{id}",
    summary: "One batch with its items counted by state.",
    ...guard(auth, CLIENT),
    request: { params: BatchPath },
    responses: { 200: jsonContent(Batch, "the batch"), ...refusals("NOT_FOUND") },
  });
  app.openapi(read, async (c) => {
    const { id } = c.req.valid("param");
    // The batch read carries its owner: one read, refused as a missing one would be.
    const batch = await store.getBatch(id);
    visibleOr404(c.get("caller"), batch.owner, `batch ${id}`);
    return c.json(batch, 200);
  });

  const summary = createRoute({
    method: "get",
    path: "/v1/batches/{id}/summary",
    summary:
      "What the dashboard's batch page draws: the batch, a histogram of its items' run times, when its first finished item started and its last one finished, items finished in the last 10 s, and its first failed items with their errors. The histogram is kept per batch and read on from where it was, so asking often costs little.",
    ...guard(auth, CLIENT),
    request: { params: BatchPath },
    responses: {
      200: jsonContent(BatchSummary, "the batch's summary"),
      ...refusals("NOT_FOUND"),
    },
  });
  app.openapi(summary, async (c) => {
    const { id } = c.req.valid("param");
    await visible(c.get("caller"), id);
    return c.json(await summaries.read(id), 200);
  });

  const results = createRoute({
    method: "get",
    path: "/v1/batches/{id}/results",
    summary:
      "The batch's results as NDJSON, one line per item: in index order, each line as soon as every item before it is done (or with order=completion as they finish), held open until the batch ends. from=K skips the K lines already received, so a reader that reconnects gets no gap and no duplicate.",
    ...guard(auth, CLIENT),
    request: { params: BatchPath, query: BatchResultsQuery },
    responses: {
      200: {
        description: "one ItemResult per line",
        content: { [NDJSON]: { schema: component(ItemResult) } },
      },
      ...refusals("NOT_FOUND"),
    },
  });
  app.openapi(results, async (c) => {
    const { id } = c.req.valid("param");
    const options = c.req.valid("query");
    // An unknown batch (or another user's) is a 404 before the stream starts.
    await visible(c.get("caller"), id);
    let page = await store.batchResults(id, options, clock());
    const signal = c.req.raw.signal;
    c.header("content-type", NDJSON);
    c.header("cache-control", "no-store");
    return stream(c, async (out) => {
      let from = options.from;
      for (;;) {
        if (page.lines.length > 0) {
          await out.write(`${page.lines.map((line) => JSON.stringify(line)).join("\n")}\n`);
          from += page.lines.length;
        }
        if (page.complete || signal.aborted || notifier.closed) return;
        // A full page means more are ready now; else wait for an item to end.
        if (page.lines.length === 0) await notifier.waitForBatch(id, STREAM_IDLE_MS, signal);
        if (signal.aborted || notifier.closed) return;
        page = await store.batchResults(id, { ...options, from }, clock());
      }
    }) as never;
  });

  const cancel = createRoute({
    method: "post",
    path: "/v1/batches/{id}/cancel",
    summary:
      "Cancel a batch: its queued items at once, its running ones stopped by their agents on their next heartbeat.",
    ...guard(auth, CLIENT, { maxBodyBytes: BODY_LIMITS.small }),
    request: { params: BatchPath },
    responses: { 200: jsonContent(Batch, "the batch, cancelled"), ...refusals("NOT_FOUND") },
  });
  app.openapi(cancel, async (c) => {
    const { id } = c.req.valid("param");
    await visible(c.get("caller"), id);
    const { batch, cancelled } = await store.cancelBatch(id, clock());
    metrics.jobsFinished("CANCELLED", cancelled.length);
    for (const jobId of cancelled) notifier.jobFinished(jobId);
    notifier.batchProgress(batch.id);
    return c.json(batch, 200);
  });

  const retry = createRoute({
    method: "post",
    path: "/v1/batches/{id}/retry",
    summary: "Queue the batch's failed items again; succeeded and cancelled items stay.",
    ...guard(auth, CLIENT, { maxBodyBytes: BODY_LIMITS.small }),
    request: { params: BatchPath },
    responses: {
      200: jsonContent(RetryBatchResponse, "how many items were queued again"),
      ...refusals("NOT_FOUND"),
    },
  });
  app.openapi(retry, async (c) => {
    const { id } = c.req.valid("param");
    await visible(c.get("caller"), id);
    const requeued = await store.retryBatch(id);
    // The retried items will end again: their first ends leave the histogram.
    if (requeued > 0) summaries.forget(id);
    if (requeued > 0) notifier.workAvailable(requeued);
    notifier.batchProgress(id);
    return c.json({ requeued }, 200);
  });

  return app;
}
