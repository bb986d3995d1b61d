import { readFileSync } from "node:fs";
import * as z from "zod";
import {
  type Batch,
  BatchId,
  type BatchSpec,
  MAX_ITEM_RETRIES,
  Runtime,
} from "../../protocol/index.js";
import { ServerUnreachableError } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand } from "../args.js";
import { EXIT, UsageError } from "../errors.js";
import { followBatch } from "../follow-batch.js";
import { table } from "../format.js";
import { limitFlags } from "../limit-flags.js";
import { readProgram, readText } from "../program.js";
import { resolveConnection } from "../settings.js";
import { clientFor, connection } from "./jobs.js";

// Schemas are built when their command runs (one CLI process runs one command).
const mapArgs = (jobLimits: ReturnType<typeof limitFlags<"">>) =>
  z.object({
    ...connection(),
    positionals: z.tuple([z.string().min(1)], { message: "expects exactly one program file" }),
    inputs: z.string({ message: "--inputs is required: a JSONL file (one input per line) or -" }),
    parallel: z.coerce.number().int().min(1).max(100_000).optional(),
    retries: z.coerce.number().int().min(0).max(MAX_ITEM_RETRIES).optional(),
    unordered: z.boolean(),
    isolate: z.boolean(),
    detach: z.boolean(),
    runtime: Runtime.optional(),
    typecheck: z.boolean(),
    ...jobLimits.shape,
  });

/**
 * The inputs of a JSONL file (or stdin for `-`): one JSON value per
 * non-blank line, as its text. A line that is not JSON is a usage error
 * naming its line number, before anything is sent.
 */
export function readInputs(path: string): string[] {
  const text = path === "-" ? readFileSync(0, "utf8") : readText(path, "inputs");
  const inputs: string[] = [];
  const lines = text.split("\n");
  for (let number = 1; number <= lines.length; number++) {
    const line = (lines[number - 1] ?? "").trim();
    if (line === "") continue;
    try {
      JSON.parse(line);
    } catch (error) {
      const where = path === "-" ? "stdin" : path;
      throw new UsageError(
        `${where}:${number}: not valid JSON (${(error as Error).message}); nothing was submitted`,
      );
    }
    inputs.push(line);
  }
  if (inputs.length === 0) {
    throw new UsageError(
      `${path === "-" ? "stdin" : path} has no inputs (one JSON value per line)`,
    );
  }
  return inputs;
}

/** Ctrl-C while following: the batch keeps running; say how to follow it again. */
function interruptible(batchId: string) {
  const controller = new AbortController();
  const onInterrupt = () => {
    process.stderr.write(
      `\nlabrun: batch ${batchId} keeps running; follow it again with: labrun batch results ${batchId}\n`,
    );
    controller.abort();
  };
  process.once("SIGINT", onInterrupt);
  return {
    signal: controller.signal,
    done: () => process.off("SIGINT", onInterrupt),
  };
}

/** Exit code after Ctrl-C (128 + SIGINT), as shells report it. */
const EXIT_INTERRUPTED = 130;

/**
 * Streams a batch's results to stdout until the last, then a summary on
 * stderr; exit 0 when every item succeeded, 1 otherwise, 3 when the
 * coordinator stays away.
 */
async function follow(
  flags: { server?: string | undefined; token?: string | undefined },
  batch: { id: string; total: number },
  options: { from: number; unordered: boolean; json: boolean; quiet?: boolean },
): Promise<number> {
  const connection = resolveConnection(flags, "client");
  const client = clientFor(flags);
  const started = Date.now();
  const interrupt = interruptible(batch.id);
  try {
    const tally = await followBatch(connection, client, batch.id, {
      from: options.from,
      order: options.unordered ? "completion" : "index",
      full: options.json,
      total: batch.total,
      signal: interrupt.signal,
      print: !options.quiet,
    });
    const final = await client.getBatch(batch.id);
    const seconds = (Date.now() - started) / 1000;
    const rate = seconds > 0 ? ((tally.received - options.from) / seconds).toFixed(1) : "?";
    process.stderr.write(
      `labrun: batch ${final.id} ${final.state}: ${final.total} items, ${final.counts.succeeded} succeeded, ${final.counts.failed} failed, ${final.counts.cancelled} cancelled, in ${seconds.toFixed(1)} s (${rate} items/s)\n`,
    );
    return final.state === "succeeded" ? EXIT.ok : EXIT.jobFailed;
  } catch (error) {
    if (interrupt.signal.aborted) return EXIT_INTERRUPTED;
    if (error instanceof ServerUnreachableError) {
      const received = (error as { tally?: { received: number } }).tally?.received ?? options.from;
      process.stderr.write(
        `labrun: lost the coordinator; batch ${batch.id} is not lost: follow it again with: labrun batch results ${batch.id} --from ${received}\n`,
      );
    }
    throw error;
  } finally {
    interrupt.done();
  }
}

/** `labrun map FILE --inputs F.jsonl|-`: one program over every input, results in input order. */
export async function map(argv: string[]): Promise<number> {
  const jobLimits = limitFlags("");
  const args = parseCommand(
    "map",
    argv,
    {
      ...CONNECTION_OPTIONS,
      inputs: { type: "string" },
      parallel: { type: "string" },
      retries: { type: "string" },
      unordered: { type: "boolean", default: false },
      isolate: { type: "boolean", default: false },
      detach: { type: "boolean", default: false },
      runtime: { type: "string" },
      typecheck: { type: "boolean", default: false },
      ...jobLimits.options,
    },
    mapArgs(jobLimits),
  );
  // .py runs as python, anything else as node, unless --runtime says otherwise;
  // an entry with imports is bundled here, before anything is sent.
  const { fields, runtime } = await readProgram(args.positionals[0], args);
  const spec: BatchSpec = { ...fields };
  if (runtime !== "node") spec.runtime = runtime;
  const inputs = readInputs(args.inputs);
  const limits = jobLimits.limits(args);
  if (Object.keys(limits).length > 0) spec.limits = limits;
  if (args.parallel !== undefined) spec.maxParallel = args.parallel;
  if (args.retries !== undefined) spec.retries = args.retries;
  if (args.isolate) spec.isolate = true;

  const { submitBatch } = await import("../batch-stream.js");
  const submitted = await submitBatch(resolveConnection(args, "client"), spec, inputs);
  if (args.detach) {
    process.stdout.write(args.json ? `${JSON.stringify(submitted)}\n` : `${submitted.id}\n`);
    return EXIT.ok;
  }
  return follow(args, submitted, { from: 0, unordered: args.unordered, json: args.json });
}

const oneBatchArgs = () =>
  z.object({
    ...connection(),
    positionals: z.tuple([z.string(), BatchId], { message: "expects a batch id" }),
    from: z.coerce.number().int().min(0).default(0),
    unordered: z.boolean(),
  });

function batchLine(batch: Batch): string {
  const done = batch.counts.succeeded + batch.counts.failed + batch.counts.cancelled;
  return [
    batch.id,
    batch.state.padEnd(9),
    `${done}/${batch.total} done`,
    `${batch.counts.running} running`,
    `${batch.counts.failed} failed`,
    batch.counts.cancelled > 0 ? `${batch.counts.cancelled} cancelled` : "",
  ]
    .filter((part) => part !== "")
    .join("  ");
}

const printBatch = (batch: Batch, json: boolean) =>
  process.stdout.write(json ? `${JSON.stringify(batch, null, 2)}\n` : `${batchLine(batch)}\n`);

/** `labrun batch status|wait|results|cancel|retry ID`. */
export async function batch(argv: string[]): Promise<number> {
  const verb = argv[0];
  const args = parseCommand(
    "batch",
    argv,
    {
      ...CONNECTION_OPTIONS,
      from: { type: "string" },
      unordered: { type: "boolean", default: false },
    },
    oneBatchArgs(),
  );
  const id = args.positionals[1];
  const client = clientFor(args);
  switch (verb) {
    case "status":
      printBatch(await client.getBatch(id), args.json);
      return EXIT.ok;
    case "results": {
      const { total } = await client.getBatch(id);
      return follow(
        args,
        { id, total },
        { from: args.from, unordered: args.unordered, json: args.json },
      );
    }
    case "wait": {
      const { total } = await client.getBatch(id);
      const code = await follow(
        args,
        { id, total },
        { from: 0, unordered: true, json: false, quiet: true },
      );
      printBatch(await client.getBatch(id), args.json);
      return code;
    }
    case "cancel":
      printBatch(await client.cancelBatch(id), args.json);
      return EXIT.ok;
    case "retry": {
      const { requeued } = await client.retryBatch(id);
      process.stdout.write(
        args.json
          ? `${JSON.stringify({ id, requeued })}\n`
          : `${id}: ${requeued} failed items queued again\n`,
      );
      return EXIT.ok;
    }
    default:
      throw new UsageError(
        `batch: unknown verb "${verb}"; use labrun batch status|wait|results|cancel|retry ID`,
      );
  }
}

const batchesArgs = () =>
  z.object({
    ...connection(),
    positionals: z.tuple([], { message: "takes no positional arguments" }),
    limit: z.coerce.number().int().min(1).max(500).optional(),
  });

/** `labrun batches [--limit N]`: newest first. */
export async function batches(argv: string[]): Promise<number> {
  const args = parseCommand(
    "batches",
    argv,
    { ...CONNECTION_OPTIONS, limit: { type: "string" } },
    batchesArgs(),
  );
  const page = await clientFor(args).listBatches({ limit: args.limit });
  if (args.json) {
    process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
    return EXIT.ok;
  }
  const rows = page.batches.map((batch) => [
    batch.id,
    batch.state,
    `${batch.counts.succeeded + batch.counts.failed + batch.counts.cancelled}/${batch.total}`,
    String(batch.counts.running),
    String(batch.counts.failed),
    batch.filename,
    batch.createdAt,
  ]);
  process.stdout.write(
    `${table([["ID", "STATE", "DONE", "RUNNING", "FAILED", "PROGRAM", "CREATED"], ...rows])}\n`,
  );
  return EXIT.ok;
}
