import { type Duplex, Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type Dockerode from "dockerode";
import { type CollectedOutput, type OutputCaps, OutputCollector } from "./output.js";
import { OutputRouter } from "./router.js";

/** How one job's run ended; every path ends in exactly one of these. */
export interface ContainerExit {
  /** null when the result arrived before the container exited (the agent does not wait for it). */
  exitCode: number | null;
  oomKilled: boolean;
  /** Why the agent killed it, if it did. */
  killedFor: "timeout" | "cancel" | "output" | null;
  output: CollectedOutput;
  /** From the moment the job reached the runner's stdin. */
  durationMs: number;
  /**
   * Set for an item run on a container that takes more than one (a batch's):
   * the container, and how many items it has run, this one included.
   */
  reuse?: { container: string; item: number; reusable: boolean };
}

/** One job for a booted container. */
export interface JobRun {
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
/** A runner that has not booted node after this long is a sandbox failure (an overloaded machine). */
const BOOT_TIMEOUT_MS = 120_000;

/**
 * A job container that is created, attached and started: its runner has booted
 * node and waits for its one job on stdin. The warm pool keeps some of these
 * ready; the cold path boots one per job. Either way a container runs exactly
 * one job and is then removed (`run` once, `destroy` always).
 *
 * @example
 * const booted = await BootedContainer.boot(docker, options);
 * try { exit = await booted.run(job); } finally { void booted.destroy(); }
 */
export class BootedContainer {
  readonly bootedAt = Date.now();
  private exitedFlag = false;
  private used = false;
  /** Batch items given to this container; past the first, it is a reused one. */
  private items = 0;
  private broken = false;
  private destroyed: Promise<void> | null = null;

  private constructor(
    readonly container: Dockerode.Container,
    private readonly stream: Duplex,
    private readonly drained: Promise<void>,
    private readonly exited: Promise<{ StatusCode?: number } | null>,
    private readonly router: OutputRouter,
  ) {
    void this.exited.then(() => {
      this.exitedFlag = true;
    });
  }

  /** create → attach → start; a failure removes what was created and throws SandboxError. */
  static async boot(
    docker: Dockerode,
    options: Dockerode.ContainerCreateOptions,
  ): Promise<BootedContainer> {
    let container: Dockerode.Container;
    try {
      container = await docker.createContainer(options);
    } catch (error) {
      throw new SandboxError(`could not create the job container: ${describe(error)}`, error);
    }
    let stream: Duplex | undefined;
    try {
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
      const attached = stream;
      const drained = new Promise<void>((resolve) => {
        attached.once("end", resolve);
        attached.once("close", resolve);
        attached.once("error", () => resolve());
      });
      const router = new OutputRouter();
      const route = (fd: 1 | 2) =>
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            router.write(fd, chunk);
            done();
          },
        });
      docker.modem.demuxStream(attached, route(1), route(2));
      try {
        await container.start();
      } catch (error) {
        throw new SandboxError(`could not start the job container: ${describe(error)}`, error);
      }
      // Waited for only once started: Docker's default condition ("not-running")
      // answers at once for a container that has not started yet.
      const exited = (container.wait() as Promise<{ StatusCode?: number }>).catch(() => null);
      return new BootedContainer(container, attached, drained, exited, router);
    } catch (error) {
      stream?.destroy();
      await removeContainer(container).catch(() => {});
      throw error;
    }
  }

  /** The runner is gone (crashed, killed, removed). */
  get hasExited(): boolean {
    return this.exitedFlag;
  }

  /** Settles when the runner has booted node and waits for its job (never, if it dies first). */
  whenReady(): Promise<void> {
    return this.router.ready;
  }

  /** Settles when the container stops, whatever the reason. */
  whenExited(): Promise<void> {
    return this.exited.then(() => {});
  }

  /**
   * Feeds the job to the runner and supervises it: the wall timeout, a cancel
   * and runaway output kill the container. Ends as soon as the runner's output
   * is complete (envelope + end-of-stderr marker), or when the container exits.
   */
  async run(job: JobRun): Promise<ContainerExit> {
    if (this.used) throw new SandboxError("a job container runs only one job");
    this.used = true;
    return this.supervise(job, false);
  }

  /** Items this container has been given (reused containers only). */
  get itemsRun(): number {
    return this.items;
  }

  /**
   * Runs one batch item on a container that stays up for the next: the
   * request asks the runner to supervise items (each in a fresh thread) and
   * stdin stays open. The container is reusable after this item only when its
   * output completed with nothing killed or overflowing and the runner did not
   * ask to be thrown away; anything else leaves it for `destroy`.
   */
  async runItem(job: JobRun): Promise<ContainerExit> {
    if (this.used && this.items === 0) throw new SandboxError("a job container runs only one job");
    if (this.broken) throw new SandboxError("this container cannot take another item");
    this.used = true;
    this.items += 1;
    if (this.items === 1) {
      // The runner's first marker came before it knew this is a batch item;
      // the framer says ready again once its item host is up, and the first
      // item's clock starts there, as a single job's starts once node is up.
      const up = await unlessWithin(
        Promise.race([
          this.router.ready.then(() => "ready" as const),
          this.exited.then(() => "exited" as const),
        ]),
        BOOT_TIMEOUT_MS,
        "slow" as const,
      );
      if (up === "ready") this.router.detach();
    }
    const exit = await this.supervise(job, true);
    const envelope = exit.output.envelope;
    // The runner's flag (K: take another, R: throw away) precedes the envelope.
    const flag = envelope?.[0];
    const reusable =
      exit.exitCode === null && exit.killedFor === null && !exit.output.overflow && flag === "K";
    if (!reusable) this.broken = true;
    return {
      ...exit,
      output: {
        ...exit.output,
        envelope:
          envelope !== null && (flag === "K" || flag === "R") ? envelope.slice(1) : envelope,
      },
      reuse: { container: this.container.id.slice(0, 12), item: this.items, reusable },
    };
  }

  private async supervise(job: JobRun, reuse: boolean): Promise<ContainerExit> {
    let killedFor: ContainerExit["killedFor"] = null;
    const kill = (reason: NonNullable<ContainerExit["killedFor"]>) => {
      if (killedFor) return;
      killedFor = reason;
      this.container.kill().catch(() => {
        // Already stopped: the wait returns all the same.
      });
    };
    let onComplete = () => {};
    const complete = new Promise<"complete">((resolve) => {
      onComplete = () => resolve("complete");
    });
    const collector = new OutputCollector(job.nonce, job.caps, () => kill("output"), onComplete);
    this.router.attach(collector);

    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => kill("cancel");
    job.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (job.signal?.aborted) kill("cancel");
      // A reused container's stdin stays open for the items after this one.
      if (reuse) this.stream.write(job.stdin);
      else this.stream.end(job.stdin);
      // The clock starts when the runner is up: a cold container may still be
      // booting node (seconds on a busy machine), which is not the program's time.
      // A reused container's runner is up already.
      const up = await unlessWithin(
        Promise.race([
          this.router.ready.then(() => "ready" as const),
          this.exited.then(() => "exited" as const),
        ]),
        BOOT_TIMEOUT_MS,
        "slow" as const,
      );
      if (up === "slow") {
        this.container.kill().catch(() => {});
        throw new SandboxError(
          `the runner did not start within ${BOOT_TIMEOUT_MS / 1000} s (is the machine overloaded?)`,
        );
      }
      const started = performance.now();
      timer = setTimeout(() => kill("timeout"), job.timeoutMs);
      const ended = await Promise.race([complete, this.exited]);
      const durationMs = performance.now() - started;
      if (reuse) this.router.detach(collector.stderrAfterEnd);
      if (ended === "complete" && killedFor === null) {
        return {
          exitCode: null,
          oomKilled: false,
          killedFor,
          output: collector.finish(),
          durationMs,
        };
      }
      await unlessWithin(this.drained, STREAM_DRAIN_MS, undefined);
      const state = await inspectState(this.container);
      const status = ended === "complete" ? null : ended;
      return {
        exitCode: typeof status?.StatusCode === "number" ? status.StatusCode : null,
        oomKilled: state.OOMKilled === true,
        killedFor,
        output: collector.finish(),
        durationMs,
      };
    } finally {
      clearTimeout(timer);
      job.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Kills and removes the container; safe to call more than once. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      this.stream.destroy();
      await removeContainer(this.container);
    })();
    return this.destroyed;
  }
}

/**
 * `until`'s value, or `instead` once `ms` have passed; the timer is cleared
 * as soon as either happens (none lingers per job).
 */
async function unlessWithin<T, U>(until: Promise<T>, ms: number, instead: U): Promise<T | U> {
  const done = new AbortController();
  try {
    return await Promise.race([until, sleep(ms, instead, { ref: false, signal: done.signal })]);
  } finally {
    done.abort();
  }
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
