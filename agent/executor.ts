import { randomBytes } from "node:crypto";
import type {
  HeartbeatStats,
  JobLimits,
  JobSpec,
  MaxLimits,
  Outcome,
  OutcomeError,
  RunnerEnvelope as RunnerEnvelopeType,
  RunnerRequest,
  Runtime,
} from "../protocol/index.js";
import { clampLimits, MAX_JSON_DEPTH, nestsDeeperThan, RunnerEnvelope } from "../protocol/index.js";
import type { OutputCaps } from "./sandbox/output.js";
import type { ContainerExit } from "./sandbox/run.js";

/**
 * What the executor needs from the container side: one run of the runner
 * image with a request on stdin. Docker implements it (agent/sandbox); unit
 * tests use a fake.
 */
export interface JobSandbox {
  run(job: {
    jobId: string;
    /** Which runner image runs it (default node). */
    runtime?: Runtime;
    limits: JobLimits;
    stdin: string;
    nonce: string;
    caps: OutputCaps;
    signal: AbortSignal;
    /**
     * Items with the same key (a batch's) may run one after another in one
     * container; absent, the job gets a fresh container of its own.
     */
    reuseKey?: string;
  }): Promise<ContainerExit>;
  /** Figures gathered since the last call, for the next heartbeat (metrics). */
  takeStats?(): HeartbeatStats;
  /** Gives back figures a heartbeat could not deliver, to be sent with the next one. */
  returnStats?(stats: HeartbeatStats): void;
}

/**
 * All a program may print before its container is killed (OUTPUT_TOO_LARGE).
 * Beyond its kept logs the agent only counts bytes, so this bounds the job's
 * time spent printing, not the agent's memory.
 */
export const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** How much of a job's output the agent keeps: its log and result limits. */
export const outputCaps = (limits: JobLimits): OutputCaps => ({
  logCapBytes: limits.logBytes,
  maxResultBytes: limits.resultBytes,
  maxOutputBytes: MAX_OUTPUT_BYTES,
});

/**
 * How long a node runner whose result is out waits for its container to be
 * removed: longer than the sandbox takes to remove a used one (it waits until
 * no job is on its hot path, at most ~0.1 s), so the container's teardown
 * never runs while the result is still on its way (runner.js).
 */
const RUNNER_LINGER_MS = 1_000;

/**
 * Runs one job and turns whatever happened into an outcome. Stages, as in
 * Piston's job.js: prime (limits, request, nonce) → execute (container) →
 * judge (the error code is decided where its cause is known: the agent's own
 * kill reason first, then the kernel's OOM kill, then the runner's envelope).
 *
 * The job's limits are clamped to this agent's maxima: the coordinator leases
 * it only jobs within them, but the machine's bounds are the agent's to keep.
 */
export async function executeJob(
  sandbox: JobSandbox,
  job: { id: string; spec: JobSpec },
  signal: AbortSignal,
  maxLimits: MaxLimits = {},
): Promise<Outcome> {
  const limits = clampLimits(job.spec.limits, maxLimits);
  const caps = outputCaps(limits);
  // A fresh nonce per job and per batch item: a single job's program that
  // learns its own (it shares the runner's process) learns nothing of another's.
  const nonce = randomBytes(24).toString("hex");
  const reuseKey = reuseKeyOf(job.spec);
  // The node runner takes a program's files as raw bytes after the request
  // line (RunnerRequest); the Python runner, in the JSON as they came.
  const nodeRunner = job.spec.runtime !== "python";
  const files = nodeRunner ? job.spec.files : undefined;
  const request: RunnerRequest & { reuse?: true } = {
    source: job.spec.source,
    filename: job.spec.filename,
    ...(files === undefined
      ? job.spec.files === undefined
        ? {}
        : { files: job.spec.files }
      : { files: files.map(({ path, content }) => ({ path, bytes: Buffer.byteLength(content) })) }),
    input: job.spec.input ?? null,
    nonce,
    ...(nodeRunner ? { lingerMs: RUNNER_LINGER_MS } : {}),
    ...(reuseKey === undefined ? {} : { reuse: true }),
  };
  const started = performance.now();
  let exit: ContainerExit;
  try {
    exit = await sandbox.run({
      jobId: job.id,
      runtime: job.spec.runtime,
      limits,
      // One line: the runner starts at the newline, before Docker passes on
      // the EOF. The files follow it as they are (RunnerRequest): a bundle's
      // megabytes are neither escaped here nor parsed in the runner.
      stdin: `${JSON.stringify(request)}\n${files?.map((file) => file.content).join("") ?? ""}`,
      nonce,
      caps,
      signal,
      ...(reuseKey === undefined ? {} : { reuseKey }),
    });
  } catch (error) {
    return {
      ok: false,
      error: {
        code: "SANDBOX_ERROR",
        message: "the sandbox failed to run the job",
        detail: error instanceof Error ? error.message : String(error),
      },
      logs: "",
      stats: { durationMs: Math.round(performance.now() - started) },
    };
  }
  return judge(exit, limits, caps);
}

/**
 * The container a job may share with others: a batch's node items, unless the
 * batch asked for isolation. Python items, and programs of several files (the
 * item host loads one source), keep one container each for now.
 */
export function reuseKeyOf(spec: JobSpec): string | undefined {
  if (spec.batchId === undefined || spec.isolate !== false) return undefined;
  if ((spec.runtime ?? "node") !== "node") return undefined;
  if (spec.files !== undefined) return undefined;
  return `${spec.batchId}`;
}

/**
 * Codes a runner's envelope may carry: what the program did. The others
 * (TIMEOUT, OUT_OF_MEMORY, CANCELLED, SANDBOX_ERROR, NODE_LOST) only the agent
 * decides, from what it saw outside the container; a program that learns its
 * nonce can write any envelope, so one with such a code is not believed.
 */
const RUNNER_CODES: ReadonlySet<string> = new Set([
  "BAD_PROGRAM_FORMAT",
  "RUNTIME_ERROR",
  "OUTPUT_TOO_LARGE",
  "RESULT_NOT_JSON",
]);

/** Maps a container's exit to the job's outcome. Exported for unit tests. */
export function judge(exit: ContainerExit, limits: JobLimits, caps: OutputCaps): Outcome {
  // Every figure here is the agent's own: none comes from the container.
  const stats = {
    durationMs: Math.round(exit.durationMs),
    exitCode: exit.exitCode,
    logBytes: exit.output.logBytes,
    logsTruncated: exit.output.logsTruncated,
    ...(exit.reuse ? { container: exit.reuse.container, containerItem: exit.reuse.item } : {}),
  };
  const logs = exit.output.logs;
  const fail = (error: OutcomeError): Outcome => ({ ok: false, error, logs, stats });

  if (exit.killedFor === "cancel") {
    return fail({ code: "CANCELLED", message: "cancelled by a client" });
  }
  if (exit.killedFor === "timeout") {
    return fail({
      code: "TIMEOUT",
      message: `the program ran longer than its ${formatMs(limits.timeoutMs)} time limit`,
    });
  }
  if (exit.killedFor === "output" || exit.output.overflow) {
    const what =
      exit.output.overflow === "result"
        ? `a result larger than ${formatBytes(caps.maxResultBytes)}`
        : `more than ${formatBytes(caps.maxOutputBytes)} of output`;
    return fail({ code: "OUTPUT_TOO_LARGE", message: `the program produced ${what}` });
  }
  if (exit.oomKilled) {
    return fail({
      code: "OUT_OF_MEMORY",
      message: `the program used more than its ${limits.memoryMb} MiB memory limit`,
    });
  }
  // The coordinator refuses JSON nested deeper than MAX_JSON_DEPTH: a result
  // that deep is the program's to fix, not a lease to lose.
  if (exit.output.envelope !== null && nestsDeeperThan(exit.output.envelope, MAX_JSON_DEPTH - 1)) {
    return fail({
      code: "RESULT_NOT_JSON",
      message: `the result nests arrays and objects deeper than ${MAX_JSON_DEPTH - 2} levels`,
    });
  }
  const envelope = parseEnvelope(exit.output.envelope);
  if (envelope?.ok) return { ok: true, result: envelope.result, logs, stats };
  if (envelope && RUNNER_CODES.has(envelope.error.code)) return fail(envelope.error);
  if (envelope) {
    // The runner's own SANDBOX_ERROR (a malformed request) cannot be told
    // from a forged one: the program's run is blamed, never the sandbox.
    return fail({
      code: "RUNTIME_ERROR",
      message:
        `the job's envelope claimed ${envelope.error.code}, which only the agent reports: ${envelope.error.message}`.slice(
          0,
          4096,
        ),
    });
  }
  if (exit.reuse && exit.reuse.item > 1) {
    // A container that ran earlier items ended under this one without a
    // result: the runner's own cleanup may have given up. Not the item's to
    // carry: a sandbox failure, so it can run again in a fresh container.
    return fail({
      code: "SANDBOX_ERROR",
      message: `the batch's reused container ended (exit code ${exit.exitCode ?? "unknown"}) before the item's result`,
    });
  }
  if (exit.exitCode === SIGKILLED) {
    // Not the agent, not the kernel's OOM killer, and not the program: the
    // runner is PID 1 of its namespace, which no process inside may SIGKILL.
    // Someone outside did (dockerd shutting down, `docker kill`).
    return fail({
      code: "SANDBOX_ERROR",
      message: "the job's container was killed from outside (was Docker restarted?)",
    });
  }
  return fail({
    code: "RUNTIME_ERROR",
    message: `the program ended (exit code ${exit.exitCode ?? "unknown"}) before main returned a result`,
  });
}

function parseEnvelope(text: string | null): RunnerEnvelopeType | null {
  if (text === null) return null;
  try {
    const parsed = RunnerEnvelope.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Exit status of a process ended by SIGKILL (128 + 9). */
const SIGKILLED = 137;

const formatMs = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`);
const formatBytes = (bytes: number) =>
  bytes >= 1024 * 1024 ? `${bytes / (1024 * 1024)} MiB` : `${bytes / 1024} KiB`;
