import { configDefaults, defineConfig } from "vitest/config";

/**
 * The fault suite alone (issue 5): `npx vitest run --root . --config
 * test/faults/vitest.faults.config.ts`. Real `labrun coordinator` and `labrun
 * agent` processes (build first: `npm run build`), real Docker.
 *
 * - `faults`: every scenario but the Docker restart. Runs after every other
 *   project of the same run (groupOrder 1), its files one at a time: the
 *   scenarios assert recovery times, which a loaded 2-core machine would blur.
 * - `faults-docker`: restarts dockerd, which disturbs every Docker user, so it
 *   runs last (groupOrder 2), alone (one worker), and only when
 *   FAULTS_DOCKER_RESTART=1 is set (otherwise it is skipped).
 */
const faultProject = {
  environment: "node",
  globalSetup: ["test/global-setup.ts", "test/faults/report-setup.ts"],
  // Every wait inside is bounded; FAULTS_FULL=1 pushes 500 jobs through a busy 2-core machine.
  testTimeout: 1_200_000,
  hookTimeout: 120_000,
  fileParallelism: false,
  maxWorkers: 1,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...faultProject,
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/faults/docker-restart.test.ts"],
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          ...faultProject,
          name: "faults-docker",
          include: ["test/faults/docker-restart.test.ts"],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
