import type { Logger } from "pino";
import { Notifier } from "../notifier.js";
import { isEmpty, type PendingWakes, parseWakeMessage, wakePayloads } from "./wakeMessage.js";

/** How long wakes are collected before one NOTIFY carries them all. */
export const FLUSH_MS = 20;

/** Where wakes go to the other coordinators and come from them (pgChannel.ts: LISTEN/NOTIFY). */
export interface WakeChannel {
  /** Sends one payload to every coordinator listening (this one too). */
  publish(payload: string): Promise<void>;
  /**
   * Calls `onMessage` with each payload any coordinator publishes, and
   * `onListen` each time listening (re)starts; resolves once it listens.
   */
  listen(onMessage: (payload: string) => void, onListen: () => void): Promise<void>;
  close(): Promise<void>;
}

/**
 * A Notifier whose wakes also reach the other coordinators on the same
 * database: routes call it as they call the plain one (main.ts picks this
 * one for PostgreSQL). Each wake is made here at once, and collected for
 * FLUSH_MS; then one NOTIFY carries all of them (a few, past PostgreSQL's
 * 8000-byte payload limit; "everything" for a flood), never one per job:
 * each NOTIFY is a commit through the server's single notification queue.
 * One flush is in flight at a time; what comes meanwhile goes in the next.
 *
 * What the others send is made here with the plain Notifier's wakes, never
 * sent on again; this coordinator's own messages come back and are skipped.
 *
 * A wake lost on the way (the LISTEN connection was down, a NOTIFY failed)
 * costs time, never a job: a lease long-poll ends after its waitMs and asks
 * the store, a job reader's after its wait, and the sweeper wakes every
 * lease waiter while jobs sit queued (retryLeases, on every coordinator).
 * When listening starts again after a lost connection, every waiter here
 * asks the store once (it may have missed wakes meanwhile).
 */
export class ClusterNotifier extends Notifier {
  readonly #id: string;
  readonly #channel: WakeChannel;
  readonly #logger: Logger;
  #pending: PendingWakes = { work: 0, finished: new Set(), agents: new Set() };
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #stopped = false;
  #failing = false;
  /** NOTIFYs sent and messages applied from others (for tests and logs). */
  readonly counts = { published: 0, applied: 0 };

  /** `id`: this coordinator, unique among those on the database. */
  constructor(id: string, channel: WakeChannel, logger: Logger) {
    super();
    this.#id = id;
    this.#channel = channel;
    this.#logger = logger;
  }

  /** Starts listening for the others' wakes; resolves once the LISTEN is in place. */
  async listen(): Promise<void> {
    let listens = 0;
    await this.#channel.listen(
      (payload) => this.#apply(payload),
      () => {
        // The first LISTEN finds nobody waiting; a later one follows a lost connection.
        if (listens++ === 0) return;
        this.#logger.info("listening for other coordinators' wake-ups again");
        super.wakeAll();
      },
    );
  }

  override workAvailable(count = Number.POSITIVE_INFINITY): void {
    super.workAvailable(count);
    if (count <= 0) return;
    this.#pending.work += count;
    this.#schedule();
  }

  override slotsFreed(agentId: string): void {
    super.slotsFreed(agentId);
    this.#pending.agents.add(agentId);
    this.#schedule();
  }

  // batchProgress and jobsFailed come through here (see Notifier).
  override jobFinished(id: string): void {
    super.jobFinished(id);
    this.#pending.finished.add(id);
    this.#schedule();
  }

  /** Stops publishing (what is pending is dropped: the others' own polls cover it), then closes. */
  override close(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    super.close();
  }

  /** Resolves once a flush in flight has ended (before the channel is closed). */
  async drained(): Promise<void> {
    await this.#flushing;
  }

  #schedule(): void {
    if (this.#stopped || this.#timer !== undefined || this.#flushing) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
        if (!isEmpty(this.#pending)) this.#schedule();
      });
    }, FLUSH_MS);
    this.#timer.unref();
  }

  async #flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = { work: 0, finished: new Set(), agents: new Set() };
    if (isEmpty(pending) || this.#stopped) return;
    try {
      for (const payload of wakePayloads(this.#id, pending)) {
        await this.#channel.publish(payload);
        this.counts.published++;
      }
      if (this.#failing) this.#logger.info("wake-ups reach the other coordinators again");
      this.#failing = false;
    } catch (error) {
      // Logged once per outage: a down database fails every flush.
      if (!this.#failing) {
        this.#logger.warn(
          { err: error },
          "could not send wake-ups to the other coordinators; they poll meanwhile",
        );
      }
      this.#failing = true;
    }
  }

  #apply(payload: string): void {
    const message = parseWakeMessage(payload);
    if (!message) {
      this.#logger.warn({ payload: payload.slice(0, 200) }, "ignored a malformed wake-up message");
      return;
    }
    if (message.from === this.#id || this.#stopped) return;
    this.counts.applied++;
    // The plain Notifier's wakes: made here, never published again.
    if (message.everything) {
      super.wakeAll();
      return;
    }
    if (message.work !== undefined) {
      super.workAvailable(message.work < 0 ? Number.POSITIVE_INFINITY : message.work);
    }
    for (const id of message.finished ?? []) super.jobFinished(id);
    for (const id of message.agents ?? []) super.slotsFreed(id);
  }
}
