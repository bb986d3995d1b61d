import type { Store, StoreSettings } from "../interfaces.js";

/**
 * What a store's tests may do besides calling its verbs. Kept small on
 * purpose: a behaviour the suite can check through the verbs is checked
 * through them; only what no verb can show goes here.
 */
export interface StoreTestHooks {
  /**
   * A second store on the same data, as a coordinator started again on the
   * same data dir or database would open it. The suite has closed the first
   * store when it calls this.
   */
  reopen(): Promise<Store>;
}

/** A fresh, empty store for one test, from a factory such as SQLite's in store.sqlite.test.ts. */
export interface StoreUnderTest {
  store: Store;
  hooks: StoreTestHooks;
  /**
   * Drops what the factory made for this test (a temp dir, a database), after
   * the suite has closed every store of the test.
   */
  dispose(): Promise<void>;
}

/** Opens a fresh, empty store with these settings. */
export type OpenStoreUnderTest = (settings: StoreSettings) => Promise<StoreUnderTest>;

/** What the suite's parts get: a store per call, closed and disposed after each test. */
export interface SuiteContext {
  /** A fresh store (lease TTL = fixtures' TTL; other settings as given). */
  open(maxAttempts?: number, settings?: Partial<StoreSettings>): Promise<Store>;
  /** The hooks of a store `open` returned. */
  hooks(store: Store): StoreTestHooks;
}
