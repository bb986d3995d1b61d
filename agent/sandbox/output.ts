/**
 * Reads a job container's output through bounded buffers.
 *
 * The runner frames its envelope on stdout as `\n<nonce><json><nonce>\n`. The
 * nonce is random per job and never visible to the program, so nothing the
 * program prints can forge or break the envelope: every byte outside the frame
 * is just logs. Logs are kept up to `logCapBytes`; past that they are counted
 * and dropped. A program that prints more than `maxOutputBytes` in all, or an
 * envelope larger than `maxResultBytes`, trips `overflow` so the caller can
 * kill the container: the agent's memory never grows with the program's output.
 *
 * Just before the envelope the runner writes the nonce alone on stderr: once
 * both are seen the output is complete (`onComplete`), and the agent need not
 * wait for the container to exit to have every byte of the job's output.
 */
export interface OutputCaps {
  logCapBytes: number;
  maxResultBytes: number;
  maxOutputBytes: number;
}

export type OverflowReason = "logs" | "result";

export interface CollectedOutput {
  /** The envelope's JSON text, or null when no complete frame was seen. */
  envelope: string | null;
  logs: string;
  logBytes: number;
  logsTruncated: boolean;
  overflow: OverflowReason | null;
}

const NEWLINE = 0x0a;
/** stderr kept after the runner's end marker, for the next item's ready marker. */
const AFTER_END_CAP = 4096;

export class OutputCollector {
  private readonly nonce: Buffer;
  private readonly logChunks: Buffer[] = [];
  private keptLogBytes = 0;
  private totalLogBytes = 0;
  private readonly envelopeChunks: Buffer[] = [];
  private envelopeBytes = 0;
  /** outside → inside the frame → done (one envelope per run). */
  private phase: "outside" | "inside" | "done" = "outside";
  /** Bytes at the end of the last stdout chunk that may begin a nonce. */
  private carry: Buffer = Buffer.alloc(0);
  /** A trailing newline held back: it is dropped if it turns out to precede the frame. */
  private heldNewline = false;
  /** The newline the runner writes after the closing nonce is not part of the logs. */
  private skipNewline = false;
  private overflowReason: OverflowReason | null = null;
  /** The runner's end-of-stderr marker (the nonce) has been seen. */
  private stderrDone = false;
  private stderrCarry: Buffer = Buffer.alloc(0);
  private completed = false;
  private readonly afterEnd: Buffer[] = [];
  private afterEndBytes = 0;

  constructor(
    nonce: string,
    private readonly caps: OutputCaps,
    private readonly onOverflow: (reason: OverflowReason) => void = () => {},
    private readonly onComplete: () => void = () => {},
  ) {
    this.nonce = Buffer.from(nonce, "utf8");
  }

  get overflow(): OverflowReason | null {
    return this.overflowReason;
  }

  /** Both the envelope and the end-of-stderr marker have arrived. */
  get complete(): boolean {
    return this.completed;
  }

  /**
   * What came on stderr after the runner's end marker: not this job's. A
   * reused container's runner says there when it is ready for the next item.
   */
  get stderrAfterEnd(): Buffer {
    return Buffer.concat(this.afterEnd);
  }

  /** Output on stderr: logs, ended by the runner's marker (what follows is not the job's). */
  stderr(chunk: Buffer): void {
    if (this.stderrDone) {
      this.keepAfterEnd(chunk);
      return;
    }
    const data = this.stderrCarry.length > 0 ? Buffer.concat([this.stderrCarry, chunk]) : chunk;
    this.stderrCarry = Buffer.alloc(0);
    const at = data.indexOf(this.nonce);
    if (at === -1) {
      const keep = this.noncePrefixAtEnd(data);
      this.stderrCarry = Buffer.from(data.subarray(data.length - keep));
      this.stderrLogs(data.subarray(0, data.length - keep));
      return;
    }
    this.stderrLogs(data.subarray(0, at));
    this.stderrDone = true;
    this.keepAfterEnd(data.subarray(at + this.nonce.length));
    this.checkComplete();
  }

  private keepAfterEnd(chunk: Buffer): void {
    if (chunk.length === 0 || this.afterEndBytes >= AFTER_END_CAP) return;
    const kept = chunk.subarray(0, AFTER_END_CAP - this.afterEndBytes);
    this.afterEnd.push(Buffer.from(kept));
    this.afterEndBytes += kept.length;
  }

  /** Output on stdout: logs, and somewhere in it the framed envelope. */
  stdout(chunk: Buffer): void {
    if (this.phase === "done") {
      this.stdoutLogs(chunk);
      return;
    }
    let data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    while (data.length > 0 && this.phase !== "done") {
      const at = data.indexOf(this.nonce);
      if (at === -1) {
        // Keep a tail that might be the start of a nonce split across chunks.
        const keep = this.noncePrefixAtEnd(data);
        const body = data.subarray(0, data.length - keep);
        this.carry = Buffer.from(data.subarray(data.length - keep));
        if (this.phase === "outside") this.stdoutLogs(body);
        else this.appendEnvelope(body);
        return;
      }
      const before = data.subarray(0, at);
      if (this.phase === "outside") {
        this.stdoutLogs(before, true);
        this.phase = "inside";
      } else {
        this.appendEnvelope(before);
        this.phase = "done";
        this.skipNewline = true;
        this.checkComplete();
      }
      data = data.subarray(at + this.nonce.length);
    }
    if (data.length > 0) this.stdoutLogs(data);
  }

  /** Called once the streams have ended. */
  finish(): CollectedOutput {
    if (this.phase === "outside" && this.carry.length > 0) this.stdoutLogs(this.carry);
    if (!this.stderrDone && this.stderrCarry.length > 0) this.stderrLogs(this.stderrCarry);
    this.stderrCarry = Buffer.alloc(0);
    if (this.heldNewline) this.appendLog(Buffer.from([NEWLINE]));
    this.heldNewline = false;
    this.carry = Buffer.alloc(0);
    return {
      envelope:
        this.phase === "done" && this.overflowReason !== "result"
          ? Buffer.concat(this.envelopeChunks).toString("utf8")
          : null,
      logs: Buffer.concat(this.logChunks).toString("utf8"),
      logBytes: this.totalLogBytes,
      logsTruncated: this.totalLogBytes > this.keptLogBytes,
      overflow: this.overflowReason,
    };
  }

  /** Length of the longest tail of `data` that is a proper prefix of the nonce. */
  private noncePrefixAtEnd(data: Buffer): number {
    for (let k = Math.min(this.nonce.length - 1, data.length); k > 0; k--) {
      if (data.subarray(data.length - k).equals(this.nonce.subarray(0, k))) return k;
    }
    return 0;
  }

  private checkComplete(): void {
    if (this.completed || this.phase !== "done" || !this.stderrDone) return;
    this.completed = true;
    this.onComplete();
  }

  private stderrLogs(chunk: Buffer): void {
    // Keep the order the program printed in: a newline held back on stdout goes first.
    if (this.heldNewline && chunk.length > 0) {
      this.appendLog(Buffer.from([NEWLINE]));
      this.heldNewline = false;
    }
    this.appendLog(chunk);
  }

  private stdoutLogs(chunk: Buffer, beforeFrame = false): void {
    let data = chunk;
    if (this.skipNewline && data.length > 0) {
      this.skipNewline = false;
      if (data[0] === NEWLINE) data = data.subarray(1);
    }
    if (data.length === 0) {
      if (beforeFrame) this.heldNewline = false;
      return;
    }
    if (this.heldNewline) {
      this.appendLog(Buffer.from([NEWLINE]));
      this.heldNewline = false;
    }
    if (data[data.length - 1] === NEWLINE) {
      if (!beforeFrame) this.heldNewline = true;
      data = data.subarray(0, data.length - 1);
    }
    this.appendLog(data);
  }

  private appendLog(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.totalLogBytes += chunk.length;
    const room = this.caps.logCapBytes - this.keptLogBytes;
    if (room > 0) {
      const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
      // Copy: the stream may reuse its buffers.
      this.logChunks.push(Buffer.from(kept));
      this.keptLogBytes += kept.length;
    }
    if (this.totalLogBytes > this.caps.maxOutputBytes) this.trip("logs");
  }

  private appendEnvelope(chunk: Buffer): void {
    if (chunk.length === 0 || this.overflowReason === "result") return;
    this.envelopeBytes += chunk.length;
    if (this.envelopeBytes > this.caps.maxResultBytes) {
      this.envelopeChunks.length = 0;
      this.trip("result");
      return;
    }
    this.envelopeChunks.push(Buffer.from(chunk));
  }

  private trip(reason: OverflowReason): void {
    if (this.overflowReason) return;
    this.overflowReason = reason;
    this.onOverflow(reason);
  }
}
