import { z } from "zod";

/**
 * What one coordinator tells the others in a NOTIFY payload: the wakes it
 * made during one flush, so theirs wake too. `work`: how many lease waiters
 * (-1: all of them); `finished`: job or batch ids whose readers read on;
 * `agents`: agents whose slots were freed; `everything`: too many ids to
 * name, every waiter asks the store again. `from` is the sender, so it
 * skips its own messages.
 */
export const WakeMessage = z.object({
  from: z.string().min(1),
  work: z.number().int().min(-1).optional(),
  finished: z.array(z.string()).optional(),
  agents: z.array(z.string()).optional(),
  everything: z.literal(true).optional(),
});
export type WakeMessage = z.output<typeof WakeMessage>;

/** The wakes one flush collected: lease waiters to wake (Infinity: all), ids by kind. */
export interface PendingWakes {
  work: number;
  finished: Set<string>;
  agents: Set<string>;
}

/** PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a margin below it. */
export const PAYLOAD_LIMIT_BYTES = 7_900;
/**
 * Past this many payloads in one flush, the flush is one "everything"
 * message instead: a flood of ids costs the others one re-read of each
 * waiter, not a string of NOTIFYs (each one a commit on the server's single
 * notification queue).
 */
export const MAX_PAYLOADS = 4;

/** True when nothing was signalled. */
export const isEmpty = (pending: PendingWakes) =>
  pending.work === 0 && pending.finished.size === 0 && pending.agents.size === 0;

/**
 * The NOTIFY payloads of one flush: usually one; split (ids over several)
 * only past PAYLOAD_LIMIT_BYTES; past MAX_PAYLOADS, one "everything".
 *
 * @example
 * wakePayloads("c1", { work: 2, finished: new Set(["j_1"]), agents: new Set() });
 * // ['{"from":"c1","work":2,"finished":["j_1"]}']
 */
export function wakePayloads(from: string, pending: PendingWakes, limit = PAYLOAD_LIMIT_BYTES) {
  const everything = [JSON.stringify({ from, everything: true } satisfies WakeMessage)];
  const payloads: string[] = [];
  let chunk: { work?: number; finished: string[]; agents: string[] } = {
    ...(pending.work > 0 ? { work: Number.isFinite(pending.work) ? pending.work : -1 } : {}),
    finished: [],
    agents: [],
  };
  // The bytes of the chunk as encoded so far (ids are ASCII: one byte per character).
  const base = (work?: number) =>
    Buffer.byteLength(JSON.stringify({ from, work, finished: [], agents: [] }));
  let size = base(chunk.work);
  const close = () => {
    const message: WakeMessage = { from };
    if (chunk.work !== undefined) message.work = chunk.work;
    if (chunk.finished.length > 0) message.finished = chunk.finished;
    if (chunk.agents.length > 0) message.agents = chunk.agents;
    payloads.push(JSON.stringify(message));
    chunk = { finished: [], agents: [] };
    size = base();
  };
  for (const [kind, ids] of [
    ["finished", pending.finished],
    ["agents", pending.agents],
  ] as const) {
    for (const id of ids) {
      const bytes = Buffer.byteLength(JSON.stringify(id)) + 1;
      if (size + bytes > limit) {
        close();
        if (payloads.length >= MAX_PAYLOADS) return everything;
      }
      chunk[kind].push(id);
      size += bytes;
    }
  }
  close();
  return payloads.length > MAX_PAYLOADS ? everything : payloads;
}

/** A payload read back; undefined when it is not one of ours (logged by the caller). */
export function parseWakeMessage(payload: string): WakeMessage | undefined {
  try {
    const parsed = WakeMessage.safeParse(JSON.parse(payload));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
