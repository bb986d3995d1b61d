import type { Outcome } from "../../../protocol/index.js";
import { ApiError } from "../../errors.js";
import type { NewAgent } from "../interfaces.js";

/** The suite's clock (every verb takes `now`) and lease TTL. */
export const T0 = 1_700_000_000_000;
export const TTL = 1_000;

export const OK: Outcome = { ok: true, result: { sum: 5 }, logs: "hi\n", stats: { durationMs: 7 } };
export const FAILED: Outcome = {
  ok: false,
  error: { code: "RUNTIME_ERROR", message: "boom" },
  logs: "",
  stats: { durationMs: 3 },
};

export const agentSpec = (name = "node-1", slots = 4): NewAgent => ({
  name,
  hostname: "lab-1",
  slots,
  version: "test",
  labels: {},
});

/** The ApiError code a verb's promise rejects with (undefined when it resolves). */
export async function codeOf(call: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await call();
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  return undefined;
}

/**
 * `each` on every item, one after the other (never two at once, so rows get
 * their creation order as in the list), and the results in that order.
 */
export async function inOrder<T, R>(
  items: readonly T[],
  each: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  for (const item of items) results.push(await each(item));
  return results;
}
