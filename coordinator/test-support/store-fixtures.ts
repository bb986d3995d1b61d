import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import type { Outcome } from "../../protocol/index.js";
import { ApiError } from "../errors.js";
import { type NewAgent, openStore, type Store } from "../store/index.js";

/**
 * What the store suites share: a store over a fresh temp dir (closed and
 * removed after each test), an agent's registration, outcomes, and the code
 * of an ApiError a verb throws. Not part of the build.
 */
export const T0 = 1_700_000_000_000;
export const TTL = 1_000;

export const OK: Outcome = { ok: true, result: { sum: 5 }, logs: "hi\n", stats: { durationMs: 7 } };
export const FAILED: Outcome = {
  ok: false,
  error: { code: "RUNTIME_ERROR", message: "boom" },
  logs: "",
  stats: { durationMs: 3 },
};

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** Runs `cleanup` after the current test. */
export const onCleanup = (cleanup: () => void) => void cleanups.push(cleanup);

export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "labrun-store-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function openTestStore(dataDir = tempDir(), maxAttempts = 2): Store {
  const store = openStore(dataDir, { leaseTtlMs: TTL, maxAttempts });
  cleanups.push(() => {
    try {
      store.close();
    } catch {
      // closed by the test already
    }
  });
  return store;
}

export const agentSpec = (name = "node-1", slots = 4): NewAgent => ({
  name,
  hostname: "lab-1",
  slots,
  version: "test",
  labels: {},
});

/** The ApiError code a call throws. */
export function codeOf(call: () => unknown): string | undefined {
  try {
    call();
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  return undefined;
}
