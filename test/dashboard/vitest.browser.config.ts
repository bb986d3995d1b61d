import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// The `browser` project on its own: the dashboard in headless chromium against
// a real cluster. Run by scripts/browser-test.sh; the same settings belong in
// vitest.config.ts's projects list.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL("../..", import.meta.url)),
    name: "browser",
    include: ["test/dashboard/**/*.test.ts"],
    environment: "node",
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
