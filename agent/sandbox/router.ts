/**
 * What the runner writes to stderr once node has booted and it is about to
 * read its job: only ever at the head of stderr, before any program code
 * exists, so no program can forge it. The agent starts the job's clock there.
 */
export const READY_MARKER = Buffer.from("LABRUN_RUNNER_READY\n");

/** Where a job's output goes once the job has been handed over. */
export interface OutputSink {
  stdout(chunk: Buffer): void;
  stderr(chunk: Buffer): void;
}

/** Output a runner prints before its job's collector takes over: kept up to this. */
const EARLY_OUTPUT_CAP = 64 * 1024;

/**
 * Routes one container's demultiplexed output: finds the runner's ready
 * marker at the head of stderr (and drops it), and keeps what arrives before
 * a job's collector is attached, then replays it into the collector.
 *
 * @example
 * const router = new OutputRouter();
 * docker.modem.demuxStream(stream, router.writable(1), router.writable(2));
 * await router.ready;
 * router.attach(collector);
 */
export class OutputRouter {
  /** Settles at the runner's ready marker (again after each `detach`). */
  ready: Promise<void>;
  private markReady: () => void = () => {};
  private isReady = false;
  private head: Buffer = Buffer.alloc(0);
  private sink: OutputSink | null = null;
  private readonly early: Array<{ fd: 1 | 2; chunk: Buffer }> = [];
  private earlyBytes = 0;

  constructor() {
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  get runnerReady(): boolean {
    return this.isReady;
  }

  /** One chunk of the container's stdout (1) or stderr (2). */
  write(fd: 1 | 2, chunk: Buffer): void {
    if (fd === 1 || this.isReady) {
      this.deliver(fd, chunk);
      return;
    }
    this.head = this.head.length > 0 ? Buffer.concat([this.head, chunk]) : Buffer.from(chunk);
    const at = this.head.indexOf(READY_MARKER);
    if (at === -1) {
      // Anything before the marker (a node warning) is output like any other;
      // keep only a tail that may be the marker's beginning.
      const keep = Math.min(this.head.length, READY_MARKER.length - 1);
      this.deliver(2, this.head.subarray(0, this.head.length - keep));
      this.head = Buffer.from(this.head.subarray(this.head.length - keep));
      return;
    }
    const before = this.head.subarray(0, at);
    const after = this.head.subarray(at + READY_MARKER.length);
    this.head = Buffer.alloc(0);
    this.isReady = true;
    this.deliver(2, before);
    this.deliver(2, after);
    this.markReady();
  }

  /** Hands everything from now on (and what came before) to the job's collector. */
  attach(sink: OutputSink): void {
    for (const { fd, chunk } of this.early.splice(0)) {
      if (fd === 1) sink.stdout(chunk);
      else sink.stderr(chunk);
    }
    this.sink = sink;
  }

  /**
   * The job's collector is done (a reused container): output from now on
   * waits for the next, after the runner's ready marker again. `stderrAfterEnd`
   * is what the collector saw on stderr after its job's end.
   */
  detach(stderrAfterEnd: Buffer = Buffer.alloc(0)): void {
    this.sink = null;
    this.early.length = 0;
    this.earlyBytes = 0;
    // The runner says again when it is ready for the next item.
    this.isReady = false;
    this.head = Buffer.alloc(0);
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
    if (stderrAfterEnd.length > 0) this.write(2, stderrAfterEnd);
  }

  private deliver(fd: 1 | 2, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.sink) {
      if (fd === 1) this.sink.stdout(chunk);
      else this.sink.stderr(chunk);
      return;
    }
    if (this.earlyBytes >= EARLY_OUTPUT_CAP) return;
    const kept = chunk.subarray(0, EARLY_OUTPUT_CAP - this.earlyBytes);
    this.early.push({ fd, chunk: Buffer.from(kept) });
    this.earlyBytes += kept.length;
  }
}
