/** The env var that carries this test run's id (set by test/global-setup.ts). */
export const TEST_RUN_ENV = "LABRUN_TEST_RUN";

/** Prefix for every agent name a test starts, so a run can tell its containers from another's. */
export function runPrefix(): string {
  return process.env[TEST_RUN_ENV] ?? "";
}
