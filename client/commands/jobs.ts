import * as z from "zod";
import { type Job, JobId, JobState, type SubmitJobRequest } from "../../protocol/jobs.js";
import { Runtime } from "../../protocol/runtimes.js";
import { UserName } from "../../protocol/users.js";
import { LabrunClient } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand, serverFlag } from "../args.js";
import { EXIT, UsageError } from "../errors.js";
import { jobLine, jobsTable } from "../format.js";
import { limitFlags } from "../limit-flags.js";
import { waitWithProgress } from "../progress.js";
import { resolveConnection } from "../settings.js";

// Each command builds only the schemas it parses with, when it runs: one CLI
// process runs one command.
export const connection = () => ({
  server: serverFlag().optional(),
  token: z.string().min(1).optional(),
  json: z.boolean(),
});

export const clientFor = (flags: { server?: string | undefined; token?: string | undefined }) =>
  new LabrunClient(resolveConnection(flags, "client"));

const submitArgs = (jobLimits: ReturnType<typeof limitFlags<"">>) =>
  z
    .object({
      ...connection(),
      positionals: z.tuple([z.string().min(1)], { message: "expects exactly one program file" }),
      input: z.string().optional(),
      "input-file": z.string().optional(),
      ...jobLimits.shape,
      runtime: Runtime.optional(),
      typecheck: z.boolean(),
      detach: z.boolean(),
    })
    .refine((args) => !(args.input && args["input-file"]), "use --input or --input-file, not both");

/** `labrun submit FILE`: runs a program on the cluster and prints main()'s result. */
export async function submit(argv: string[]): Promise<number> {
  const jobLimits = limitFlags("");
  const args = parseCommand(
    "submit",
    argv,
    {
      ...CONNECTION_OPTIONS,
      input: { type: "string" },
      "input-file": { type: "string" },
      ...jobLimits.options,
      runtime: { type: "string" },
      typecheck: { type: "boolean", default: false },
      detach: { type: "boolean", default: false },
    },
    submitArgs(jobLimits),
  );
  const limits = jobLimits.limits(args);
  // Loaded by the one command that reads a program (it builds the program
  // shapes of the whole protocol); `status` and `jobs` never load it.
  const { readProgram, readText } = await import("../program.js");
  const input = parseInput(args.input, args["input-file"], readText);
  // .py runs as python, anything else as node, unless --runtime says otherwise;
  // an entry with imports is bundled here, before anything is sent.
  const { fields, runtime } = await readProgram(args.positionals[0], args);
  const request: SubmitJobRequest = { ...fields, input };
  // Sent only for python, so a node job still goes to a coordinator that predates runtimes.
  if (runtime !== "node") request.runtime = runtime;
  if (Object.keys(limits).length > 0) request.limits = limits;

  const client = clientFor(args);
  const { id } = await client.submit(request);
  if (args.detach) {
    process.stdout.write(args.json ? `${JSON.stringify({ id })}\n` : `${id}\n`);
    return EXIT.ok;
  }
  return printOutcome(
    args.json ? await client.wait(id) : await waitWithProgress(client, id),
    args.json,
  );
}

/** Prints a finished job: result on stdout, logs on stderr; exit 1 when it failed. */
function printOutcome(job: Job, json: boolean): number {
  if (json) {
    process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
    return job.state === "succeeded" ? EXIT.ok : EXIT.jobFailed;
  }
  const outcome = job.outcome;
  if (outcome?.logs)
    process.stderr.write(outcome.logs.endsWith("\n") ? outcome.logs : `${outcome.logs}\n`);
  if (outcome?.ok) {
    process.stdout.write(`${JSON.stringify(outcome.result, null, 2)}\n`);
    return EXIT.ok;
  }
  if (outcome) {
    const detail = outcome.error.detail ? `\n${outcome.error.detail}` : "";
    process.stderr.write(
      `labrun: job ${job.id} failed: ${outcome.error.code}: ${outcome.error.message}${detail}\n`,
    );
  } else {
    process.stderr.write(`labrun: job ${job.id} is ${job.state}\n`);
  }
  return EXIT.jobFailed;
}

function parseInput(
  inline: string | undefined,
  file: string | undefined,
  readText: (path: string, what: string) => string,
) {
  const text = inline ?? (file === undefined ? undefined : readText(file, "input"));
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as z.infer<ReturnType<typeof z.json>>;
  } catch (error) {
    throw new UsageError(`the input is not valid JSON: ${(error as Error).message}`);
  }
}

const oneJobArgs = () =>
  z.object({
    ...connection(),
    positionals: z.tuple([JobId], { message: "expects one job id" }),
  });

function parseOneJob(command: string, argv: string[]) {
  return parseCommand(command, argv, CONNECTION_OPTIONS, oneJobArgs());
}

/** `labrun status ID`: the job now. */
export async function status(argv: string[]): Promise<number> {
  const args = parseOneJob("status", argv);
  const job = await clientFor(args).get(args.positionals[0]);
  process.stdout.write(args.json ? `${JSON.stringify(job, null, 2)}\n` : `${jobLine(job)}\n`);
  return EXIT.ok;
}

/** `labrun wait ID`: blocks until the job ends, then prints it like `submit`. */
export async function wait(argv: string[]): Promise<number> {
  const args = parseOneJob("wait", argv);
  const client = clientFor(args);
  const id = args.positionals[0];
  return printOutcome(
    args.json ? await client.wait(id) : await waitWithProgress(client, id),
    args.json,
  );
}

/** `labrun cancel ID`. */
export async function cancel(argv: string[]): Promise<number> {
  const args = parseOneJob("cancel", argv);
  const job = await clientFor(args).cancel(args.positionals[0]);
  process.stdout.write(args.json ? `${JSON.stringify(job, null, 2)}\n` : `${jobLine(job)}\n`);
  return EXIT.ok;
}

/** `labrun logs ID`: what the program printed. */
export async function logs(argv: string[]): Promise<number> {
  const args = parseOneJob("logs", argv);
  const job = await clientFor(args).get(args.positionals[0]);
  const text = job.outcome?.logs ?? "";
  process.stdout.write(args.json ? `${JSON.stringify({ id: job.id, logs: text })}\n` : text);
  return EXIT.ok;
}

const jobsArgs = () =>
  z
    .object({
      ...connection(),
      positionals: z.tuple([], { message: "takes no positional arguments" }),
      state: JobState.optional(),
      limit: z.coerce.number().int().min(1).max(500).optional(),
      user: UserName.optional(),
      all: z.boolean(),
    })
    .refine((args) => !(args.user && args.all), "use --user NAME or --all, not both");

/**
 * `labrun jobs [--state S] [--limit N]`: your jobs, newest first; with
 * `--user NAME` or `--all`, one user's or everyone's (the admin token).
 */
export async function jobs(argv: string[]): Promise<number> {
  const args = parseCommand(
    "jobs",
    argv,
    {
      ...CONNECTION_OPTIONS,
      state: { type: "string" },
      limit: { type: "string" },
      user: { type: "string" },
      all: { type: "boolean", default: false },
    },
    jobsArgs(),
  );
  const asAdmin = args.user !== undefined || args.all;
  const client = asAdmin ? new LabrunClient(resolveConnection(args, "admin")) : clientFor(args);
  const page = await client.list({
    state: args.state,
    limit: args.limit,
    ...(args.user !== undefined ? { user: args.user } : {}),
    ...(args.all ? { all: "true" as const } : {}),
  });
  process.stdout.write(
    args.json ? `${JSON.stringify(page, null, 2)}\n` : `${jobsTable(page.jobs)}\n`,
  );
  return EXIT.ok;
}
