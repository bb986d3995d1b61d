import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CoordinatorConfigInput, parseCoordinatorConfig } from "../config.js";
import { openStore } from "../store/index.js";
import { loadOrCreateTokens } from "../tokens.js";

/**
 * A coordinator's parts over a fresh temp data dir, for unit tests that
 * build the app in-process: config, store and tokens, and close() to drop
 * them. Not part of the build (tsconfig.build.json leaves test-support out).
 *
 * @example
 * const parts = openTempCoordinator("app", { leaseTtlMs: 1000 });
 * cleanups.push(parts.close);
 * const app = createApp({ ...parts, notifier: new Notifier(), logger });
 */
export function openTempCoordinator(
  name: string,
  settings: Omit<CoordinatorConfigInput, "dataDir"> = {},
) {
  const dataDir = mkdtempSync(join(tmpdir(), `labrun-${name}-`));
  const config = parseCoordinatorConfig({ dataDir, ...settings });
  const store = openStore(dataDir, config);
  const { tokens } = loadOrCreateTokens(dataDir);
  return {
    dataDir,
    config,
    store,
    tokens,
    async close() {
      await store.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
