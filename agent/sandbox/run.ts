import { type Duplex, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import { type CollectedOutput, type OutputCaps, OutputCollector } from "./output.js";

/** How one container run ended; every path ends in exactly one of these. */
export interface ContainerExit {
  exitCode: number | null;
  oomKilled: boolean;
  /** Why the agent killed it, if it did. */
  killedFor: "timeout" | "cancel" | "output" | null;
  output: CollectedOutput;
  durationMs: number;
}

export interface ContainerRun {
  options: Dockerode.ContainerCreateOptions;
  /** Written to the container's stdin, then stdin is closed. */
  stdin: string;
  nonce: string;
  caps: OutputCaps;
  timeoutMs: number;
  /** Aborting it kills the container (a client's cancel). */
  signal?: AbortSignal | undefined;
}

/** A failure of the sandbox itself (Docker), not of the program. */
export class SandboxError extends Error {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "SandboxError";
  }
}

/** How long to wait for the output streams to drain after the container exits. */
const STREAM_DRAIN_MS = 2_000;

/**
 * Runs one job container: create → attach → start → feed stdin → wait (or kill
 * on timeout, cancel or runaway output) → inspect → remove. The container is
 * removed on every path, including errors.
 */
export async function runContainer(docker: Dockerode, run: ContainerRun): Promise<ContainerExit> {
  let container: Dockerode.Container;
  try {
    container = await docker.createContainer(run.options);
  } catch (error) {
    throw new SandboxError(`could not create the job container: ${describe(error)}`, error);
  }
  try {
    return await superviseContainer(docker, container, run);
  } finally {
    await removeContainer(container);
  }
}

async function superviseContainer(
  docker: Dockerode,
  container: Dockerode.Container,
  run: ContainerRun,
): Promise<ContainerExit> {
  let killedFor: ContainerExit["killedFor"] = null;
  const kill = (reason: NonNullable<ContainerExit["killedFor"]>) => {
    if (killedFor) return;
    killedFor = reason;
    container.kill().catch(() => {
      // Already stopped: the wait below returns all the same.
    });
  };
  const collector = new OutputCollector(run.nonce, run.caps, () => kill("output"));

  let stream: Duplex;
  try {
    stream = (await container.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as Duplex;
  } catch (error) {
    throw new SandboxError(`could not attach to the job container: ${describe(error)}`, error);
  }
  const drained = new Promise<void>((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
  docker.modem.demuxStream(stream, sink(collector, "stdout"), sink(collector, "stderr"));

  const started = performance.now();
  const timer = setTimeout(() => kill("timeout"), run.timeoutMs);
  const onAbort = () => kill("cancel");
  run.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      await container.start();
    } catch (error) {
      throw new SandboxError(`could not start the job container: ${describe(error)}`, error);
    }
    if (run.signal?.aborted) kill("cancel");
    stream.end(run.stdin);

    // Waited for only once started: Docker's default condition ("not-running")
    // answers at once for a container that has not started yet, which would end
    // the run early; once started it answers when the container stops (or at
    // once, with the exit code, if it already has).
    const status = (await container.wait()) as { StatusCode?: number };
    const durationMs = performance.now() - started;
    await Promise.race([drained, sleep(STREAM_DRAIN_MS, undefined, { ref: false })]);
    const state = await inspectState(container);
    return {
      exitCode: typeof status.StatusCode === "number" ? status.StatusCode : null,
      oomKilled: state.OOMKilled === true,
      killedFor,
      output: collector.finish(),
      durationMs,
    };
  } finally {
    clearTimeout(timer);
    run.signal?.removeEventListener("abort", onAbort);
    stream.destroy();
  }
}

function sink(collector: OutputCollector, which: "stdout" | "stderr"): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      collector[which](chunk);
      done();
    },
  });
}

async function inspectState(container: Dockerode.Container): Promise<{ OOMKilled?: boolean }> {
  try {
    const info = await container.inspect();
    return info.State ?? {};
  } catch {
    return {};
  }
}

/** Removal treats "already gone" as success (Nomad's driver does the same). */
export async function removeContainer(container: Dockerode.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404 || status === 409) return;
    throw new SandboxError(`could not remove container ${container.id}: ${describe(error)}`, error);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
