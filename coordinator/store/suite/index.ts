import { afterEach, describe } from "vitest";
import type { Store, StoreSettings } from "../interfaces.js";
import { batchSuite } from "./batches.js";
import { TTL } from "./fixtures.js";
import { jobSuite } from "./jobs.js";
import { leadershipSuite } from "./leadership.js";
import { programSuite } from "./programs.js";
import { statsSuite } from "./stats.js";
import { tokenSuite } from "./tokens.js";
import type { OpenStoreUnderTest, StoreTestHooks, SuiteContext } from "./types.js";
import { userSuite } from "./users.js";

export type * from "./types.js";

/**
 * The store test suite: every verb's behaviour, run against any Store. A store
 * joins by calling this with its own factory in a `*.test.ts` file:
 *
 * @example
 * describeStoreSuite("sqlite", async (settings) => {
 *   const dir = mkdtempSync(join(tmpdir(), "labrun-store-"));
 *   return {
 *     store: openStore(dir, settings),
 *     hooks: { reopen: async () => openStore(dir, settings) },
 *     dispose: async () => rmSync(dir, { recursive: true, force: true }),
 *   };
 * });
 */
export function describeStoreSuite(name: string, openStore: OpenStoreUnderTest): void {
  describe(`store suite: ${name}`, () => {
    const opened: { stores: Store[]; dispose: () => Promise<void> }[] = [];
    const hooksOf = new Map<Store, StoreTestHooks>();
    afterEach(async () => {
      for (const { stores, dispose } of opened.splice(0).reverse()) {
        for (const store of stores) await closeQuietly(store);
        await dispose();
      }
      hooksOf.clear();
    });
    const context: SuiteContext = {
      async open(maxAttempts = 2, settings: Partial<StoreSettings> = {}) {
        const { store, hooks, dispose } = await openStore({
          leaseTtlMs: TTL,
          maxAttempts,
          ...settings,
        });
        const stores = [store];
        opened.push({ stores, dispose });
        // A reopened store is closed after the test too.
        const tracked: StoreTestHooks = {
          async reopen() {
            const again = await hooks.reopen();
            stores.push(again);
            hooksOf.set(again, tracked);
            return again;
          },
        };
        hooksOf.set(store, tracked);
        return store;
      },
      hooks(store) {
        const hooks = hooksOf.get(store);
        if (!hooks) throw new Error("hooks(store): this store was not opened by the suite");
        return hooks;
      },
    };
    jobSuite(context);
    batchSuite(context);
    statsSuite(context);
    userSuite(context);
    programSuite(context);
    tokenSuite(context);
    leadershipSuite(context);
  });
}

/** Closes a store that the test may have closed already. */
async function closeQuietly(store: Store): Promise<void> {
  try {
    await store.close();
  } catch {
    // closed by the test already
  }
}
