import type { LabrunClient } from "./api.js";

const BAR_WIDTH = 24;

/** `1m05s`, `42s`. */
function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const whole = Math.max(0, Math.round(seconds));
  return whole >= 60
    ? `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`
    : `${whole}s`;
}

/**
 * A live progress line for a batch on stderr, only when stderr is a
 * terminal: a bar, done, failed, running, items/s and ETA. Done and failed
 * come from the lines received; running from the batch's counts, asked
 * once a second.
 */
export class BatchProgress {
  readonly #stream: NodeJS.WriteStream;
  readonly #started = Date.now();
  #done: number;
  #failed = 0;
  #running = 0;
  #note = "";
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(
    client: LabrunClient,
    batchId: string,
    readonly total: number,
    already: number,
    stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.#stream = stream;
    this.#done = already;
    if (!stream.isTTY) return;
    const ask = () =>
      client.getBatch(batchId).then(
        (batch) => {
          this.#running = batch.counts.running;
        },
        () => undefined,
      );
    void ask();
    this.#timers.push(
      setInterval(() => void ask(), 1_000),
      setInterval(() => this.#draw(), 200),
    );
    for (const timer of this.#timers) timer.unref();
  }

  item(ok: boolean): void {
    this.#done++;
    if (!ok) this.#failed++;
    this.#note = "";
  }

  note(text: string): void {
    this.#note = text;
  }

  stop(): void {
    for (const timer of this.#timers) clearInterval(timer);
    if (this.#stream.isTTY) this.#stream.write("\r\x1b[2K");
  }

  #draw(): void {
    const seconds = (Date.now() - this.#started) / 1000;
    const rate = seconds > 0 ? this.#done / seconds : 0;
    const filled = Math.round((this.#done / Math.max(1, this.total)) * BAR_WIDTH);
    const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
    const eta = rate > 0 ? duration((this.total - this.#done) / rate) : "?";
    this.#stream.write(
      `\r\x1b[2K${bar} ${this.#done}/${this.total} done · ${this.#failed} failed · ${this.#running} running · ${rate.toFixed(1)} items/s · ETA ${eta}${this.#note ? ` · ${this.#note}` : ""}`,
    );
  }
}
