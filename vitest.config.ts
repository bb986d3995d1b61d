import { configDefaults, defineConfig } from "vitest/config";

// `unit` (pure logic, next to the code, no Docker, no sockets), `integration`
// (test/: real coordinator, real agents, real Docker), `browser` (the
// dashboard in headless chromium, which `npm test` installs with
// scripts/ensure-chromium.sh; without it the suite fails, unless
// LABRUN_SKIP_BROWSER=1 says to skip it), then the fault suite: real
// `labrun` processes killed and restarted, one file at a time after the
// others, since it asserts recovery times. `faults-docker` restarts dockerd
// and runs only with FAULTS_DOCKER_RESTART=1 (see test/faults/README.md).
const dockerBacked = {
  environment: "node",
  globalSetup: ["test/global-setup.ts"],
  testTimeout: 60_000,
  hookTimeout: 120_000,
} as const;
const faultProject = {
  environment: "node",
  globalSetup: ["test/global-setup.ts", "test/faults/report-setup.ts"],
  testTimeout: 1_200_000,
  hookTimeout: 120_000,
  fileParallelism: false,
  maxWorkers: 1,
} as const;

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
          ...dockerBacked,
          globalSetup: [...dockerBacked.globalSetup],
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/faults/**", "test/dashboard/**"],
        },
      },
      {
        test: {
          ...dockerBacked,
          globalSetup: [...dockerBacked.globalSetup],
          name: "browser",
          include: ["test/dashboard/**/*.test.ts"],
        },
      },
      {
        test: {
          ...faultProject,
          globalSetup: [...faultProject.globalSetup],
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/faults/docker-restart.test.ts"],
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          ...faultProject,
          globalSetup: [...faultProject.globalSetup],
          name: "faults-docker",
          include: ["test/faults/docker-restart.test.ts"],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
