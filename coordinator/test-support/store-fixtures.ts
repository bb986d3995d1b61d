import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { openStore, type Store } from "../store/index.js";
import { TTL } from "../store/suite/fixtures.js";
import type { OpenStoreUnderTest } from "../store/suite/index.js";

/**
 * SQLite stores for tests: over a fresh temp dir, closed and removed after
 * each test. The store suite's factory (`openSqliteUnderTest`) and the
 * SQLite-only tests use them. Not part of the build.
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Runs `cleanup` after the current test. */
export const onCleanup = (cleanup: () => unknown) => void cleanups.push(cleanup);

export function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "labrun-store-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A SQLite store in `dataDir`, closed after the test (unless the test closed it). */
export function openTestStore(dataDir = tempDir(), maxAttempts = 2): Store {
  const store = openStore(dataDir, { leaseTtlMs: TTL, maxAttempts });
  cleanups.push(async () => {
    try {
      await store.close();
    } catch {
      // closed by the test already
    }
  });
  return store;
}

/** The store suite's factory for SQLite: a store in a temp dir of its own. */
export const openSqliteUnderTest: OpenStoreUnderTest = async (settings) => {
  const dataDir = mkdtempSync(join(tmpdir(), "labrun-store-"));
  return {
    store: openStore(dataDir, settings),
    hooks: { reopen: async () => openStore(dataDir, settings) },
    dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
};
