import { configDefaults, defineConfig } from "vitest/config";

// `unit` (pure logic, next to the code, no Docker, no sockets), `integration`
// (test/: real coordinator, real agents, real Docker), `browser` (the
// dashboard in headless chromium, which `npm test` installs with
// scripts/ensure-chromium.sh; without it the suite fails, unless
// LABRUN_SKIP_BROWSER=1 says to skip it), then the fault suite: real
// `labrun` processes killed and restarted, after the others. `faults` holds
// the scenarios that assert only what happened to the jobs (none lost, none
// run twice): two files at a time, as each starts its own processes, agent
// names, data dirs, ports and databases (pg-restart's PostgreSQL server is
// its own). `faults-timed` holds those that assert how long something took
// (a re-run within the lease TTL, a leader's takeover, heartbeats failing
// over before a TTL, an agent's exit after SIGTERM): one file at a time,
// after `faults`, with nothing else of the run beside them. `faults-docker`
// restarts dockerd and runs only with FAULTS_DOCKER_RESTART=1 (see
// test/faults/README.md).
//
// The unit, integration and browser projects keep vitest's default workers
// (one fewer than the CPUs: one file at a time on a 2-core machine), unless
// LABRUN_TEST_WORKERS says how many. Several of their files assert times (the
// hostile suite's limit + 2 s, fair share's waits, wake-ups within 5 s), and
// with two files at a time on a 2-core machine shared with other work, tests
// of seven files failed (the hostile suite failed one at a time too): one at a
// time until a run on a quiet machine shows two are safe. Projects of one
// `sequence.groupOrder` must share maxWorkers.
const testWorkers = Number(process.env.LABRUN_TEST_WORKERS ?? "");
const workers = Number.isInteger(testWorkers) && testWorkers > 0 ? { maxWorkers: testWorkers } : {};
const dockerBacked = {
  environment: "node",
  globalSetup: ["test/global-setup.ts"],
  testTimeout: 60_000,
  hookTimeout: 120_000,
  ...workers,
} as const;
const faultProject = {
  environment: "node",
  globalSetup: ["test/global-setup.ts", "test/faults/report-setup.ts"],
  testTimeout: 1_200_000,
  hookTimeout: 120_000,
} as const;
const serialFaults = { ...faultProject, fileParallelism: false, maxWorkers: 1 } as const;
/** Fault files that assert recovery times: run alone (`faults-timed`). */
const TIMED_FAULTS = [
  "test/faults/agent-crash.test.ts",
  "test/faults/agent-sigterm.test.ts",
  "test/faults/coordinator-outage.test.ts",
  "test/faults/leader.test.ts",
  "test/faults/pg-coordinator-sigstop.test.ts",
];
const DOCKER_FAULTS = "test/faults/docker-restart.test.ts";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["{protocol,coordinator,agent,client,runner-image}/**/*.test.ts"],
          environment: "node",
          ...workers,
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
          exclude: [...configDefaults.exclude, ...TIMED_FAULTS, DOCKER_FAULTS],
          // Two files at a time: they share nothing, and mostly wait on containers and outages.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          ...serialFaults,
          globalSetup: [...serialFaults.globalSetup],
          name: "faults-timed",
          include: TIMED_FAULTS,
          sequence: { groupOrder: 2 },
        },
      },
      {
        test: {
          ...serialFaults,
          globalSetup: [...serialFaults.globalSetup],
          name: "faults-docker",
          include: [DOCKER_FAULTS],
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
