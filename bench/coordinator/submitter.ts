import { performance } from "node:perf_hooks";
import type { SubmitJobRequest, SubmitJobResponse } from "../../protocol/index.js";
import { type LoopbackJson, sleep } from "./http.js";

/** The trivial job every phase submits. */
const SUBMIT_BODY = JSON.stringify({
  source: "exports.main = () => 1",
} satisfies SubmitJobRequest);

/** Totals of one submitting run. */
export interface SubmitTotals {
  accepted: number;
  errors: number;
}

/**
 * Submits one job; resolves with its id, or undefined when the coordinator
 * refused it or the request failed (counted in `totals.errors`).
 */
async function submitOne(
  http: LoopbackJson,
  token: string,
  totals: SubmitTotals,
): Promise<string | undefined> {
  try {
    const answer = await http.post("/jobs", token, SUBMIT_BODY);
    if (answer.status === 201) {
      totals.accepted++;
      return (answer.body as SubmitJobResponse).id;
    }
  } catch {
    // Counted below; the bench reports errors rather than stopping on the first.
  }
  totals.errors++;
  await sleep(10);
  return undefined;
}

/**
 * Enqueues `count` jobs as fast as `concurrency` parallel submitters get them
 * accepted, stopping early at `deadline` (performance.now() ms).
 */
export async function enqueueMany(
  http: LoopbackJson,
  token: string,
  options: { count: number; concurrency: number; deadline: number },
): Promise<SubmitTotals & { seconds: number; perSecond: number; complete: boolean }> {
  const totals: SubmitTotals = { accepted: 0, errors: 0 };
  const started = performance.now();
  let claimed = 0;
  const worker = async () => {
    while (claimed < options.count && performance.now() < options.deadline) {
      claimed++;
      if ((await submitOne(http, token, totals)) === undefined) claimed--;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  return {
    ...totals,
    seconds,
    perSecond: totals.accepted / seconds,
    complete: totals.accepted >= options.count,
  };
}

/**
 * Keeps about `depth` jobs queued until stop() resolves: `concurrency`
 * submitters submit whenever `queued()` (the caller's count of accepted minus
 * leased jobs) is under the depth, so the agents never run dry and the queue
 * does not grow without bound either.
 */
export function keepQueueFed(
  http: LoopbackJson,
  token: string,
  options: {
    depth: number;
    concurrency: number;
    queued: () => number;
    /** Called at each 201, so `queued()` counts the job at once. */
    onAccepted: () => void;
  },
): { totals: SubmitTotals; stop: () => Promise<void> } {
  const totals: SubmitTotals = { accepted: 0, errors: 0 };
  let running = true;
  let pending = 0;
  const worker = async () => {
    while (running) {
      if (options.queued() + pending >= options.depth) {
        await sleep(1);
        continue;
      }
      pending++;
      const id = await submitOne(http, token, totals);
      if (id !== undefined) options.onAccepted();
      pending--;
    }
  };
  const workers = Promise.all(Array.from({ length: options.concurrency }, worker));
  return {
    totals,
    stop: async () => {
      running = false;
      await workers;
    },
  };
}

/**
 * Open-loop submitting at a steady `perSecond` for `durationMs`: each job is
 * sent when its time comes, whether or not earlier ones were answered (a
 * closed loop would slow down exactly when the coordinator does and hide its
 * latency). `accepted` gets each job's id with the time its request was sent
 * and the time its 201 arrived.
 */
export async function submitAtRate(
  http: LoopbackJson,
  token: string,
  options: {
    perSecond: number;
    durationMs: number;
    accepted: (id: string, sentAt: number, acceptedAt: number) => void;
  },
): Promise<SubmitTotals & { sent: number; maxBehindMs: number }> {
  const totals: SubmitTotals = { accepted: 0, errors: 0 };
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  let sent = 0;
  let maxBehindMs = 0;
  const total = Math.round((options.perSecond * options.durationMs) / 1000);
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - started) * options.perSecond) / 1000) + 1);
    // How late the bench itself sends: if this grows, the client, not the coordinator, is the limit.
    maxBehindMs = Math.max(maxBehindMs, now - (started + (sent * 1000) / options.perSecond));
    for (; sent < due; sent++) {
      const sentAt = performance.now();
      const request = submitOne(http, token, totals).then((id) => {
        if (id !== undefined) options.accepted(id, sentAt, performance.now());
      });
      inFlight.add(request);
      void request.finally(() => inFlight.delete(request));
    }
    const nextAt = started + (sent * 1000) / options.perSecond;
    await sleep(Math.max(0, nextAt - performance.now()));
  }
  await Promise.all([...inFlight]);
  return { ...totals, sent, maxBehindMs };
}
