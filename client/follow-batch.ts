import { setTimeout as sleep } from "node:timers/promises";
import type { ItemResult } from "../protocol/index.js";
import { rotateServers } from "../protocol/servers.js";
import { type LabrunClient, ServerUnreachableError } from "./api.js";
import { BatchProgress } from "./batch-progress.js";
import { batchResults, type Connection } from "./batch-stream.js";

/** How long a follower keeps trying to reach a coordinator that went away. */
const RECONNECT_FOR_MS = 60_000;

export interface FollowOptions {
  from: number;
  order: "index" | "completion";
  /** Each line whole (stats, jobId); else only index, ok and result or error. */
  full: boolean;
  /** The batch's size, for the progress bar. */
  total: number;
  signal: AbortSignal;
  /** Print each line (`labrun batch wait` only counts them). Default true. */
  print?: boolean;
}

export interface FollowTally {
  /** Lines received, `from` included: where to resume. */
  received: number;
  succeeded: number;
  failed: number;
}

/** The line `labrun map` prints for an item: `{index, ok, result}` or `{index, ok, error:{code,message}}`. */
export function itemLine(item: ItemResult, full: boolean): string {
  if (full) return JSON.stringify(item);
  return item.ok
    ? JSON.stringify({ index: item.index, ok: true, result: item.result })
    : JSON.stringify({
        index: item.index,
        ok: false,
        error: { code: item.error.code, message: item.error.message },
      });
}

/** Writes to stdout, waiting when its buffer is full: 100,000 lines never pile up in memory. */
function writeOut(text: string): Promise<void> {
  return process.stdout.write(text)
    ? Promise.resolve()
    : new Promise((resolve) => process.stdout.once("drain", resolve));
}

/**
 * Prints a batch's results on stdout as they stream in, one line per item,
 * until every line is in. A dropped connection (the coordinator restarted,
 * or another took over) is resumed from the lines already printed, so
 * nothing is missed or printed twice; after RECONNECT_FOR_MS without an
 * answer it throws ServerUnreachableError with the tally so far in
 * `tally`. On a terminal, a progress bar runs on stderr meanwhile.
 *
 * @example
 * const tally = await followBatch(connection, client, id, { from: 0, order: "index", full: false, total, signal });
 */
export async function followBatch(
  connection: Connection,
  client: LabrunClient,
  batchId: string,
  options: FollowOptions,
): Promise<FollowTally> {
  const tally: FollowTally = { received: options.from, succeeded: 0, failed: 0 };
  const progress = new BatchProgress(client, batchId, options.total, options.from);
  let lostSince: number | undefined;
  // Each reconnect goes to the next server of the list (the same one when there is one).
  let current = connection;
  try {
    for (;;) {
      try {
        for await (const item of batchResults(current, batchId, {
          from: tally.received,
          order: options.order,
          signal: options.signal,
        })) {
          lostSince = undefined;
          tally.received++;
          if (item.ok) tally.succeeded++;
          else tally.failed++;
          progress.item(item.ok);
          if (options.print !== false) await writeOut(`${itemLine(item, options.full)}\n`);
        }
        return tally;
      } catch (error) {
        if (!(error instanceof ServerUnreachableError) || options.signal.aborted) throw error;
        lostSince ??= Date.now();
        if (Date.now() - lostSince > RECONNECT_FOR_MS) {
          throw Object.assign(error, { tally });
        }
        progress.note("reconnecting…");
        current = { ...current, server: rotateServers(current.server) };
        // Ends early on Ctrl-C (the abort), which the check below then answers.
        await sleep(500, undefined, { signal: options.signal }).catch(() => undefined);
        if (options.signal.aborted) throw error;
      }
    }
  } finally {
    progress.stop();
  }
}
