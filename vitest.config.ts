import { defineConfig } from "vitest/config";

// Two projects: `unit` (pure logic, next to the code, no Docker, no sockets)
// and `integration` (test/: real coordinator, real agents, real Docker).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{protocol,coordinator,agent,client,runner-image}/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/global-setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
