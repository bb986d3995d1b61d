import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Tally } from "./jobs.js";
import { OUTPUT_DIR } from "./processes.js";

/** Where each scenario leaves its figures for the run's report (see report-setup.ts). */
export const SCENARIO_DIR = join(OUTPUT_DIR, "faults", "scenarios");

/** `FAULTS_FULL=1`: the long run (500 jobs where the lean run uses ~60). */
export const FULL = process.env.FAULTS_FULL === "1";

/** One scenario's figures, as they go into test-output/faults-report.json. */
export interface ScenarioFigures {
  /** Stable key, e.g. "1-coordinator-kill". */
  scenario: string;
  title: string;
  jobsSubmitted: number;
  lost: number;
  duplicated: number;
  succeeded: number;
  failed: number;
  /** Succeeded jobs that needed more than one lease. */
  rerun: number;
  /** Named recovery times of this scenario, in ms. */
  recoveryMs: Record<string, number | null>;
  /** Anything else worth keeping (nodes, failure codes, exit codes…). */
  notes?: Record<string, unknown>;
}

/** The figures every scenario reports from its tally of the records. */
export function tallyFigures(counts: Tally) {
  const { lost, duplicated, succeeded, failed, rerun } = counts;
  return { lost, duplicated, succeeded, failed, rerun };
}

/**
 * Writes a scenario's figures before its assertions run, so a failing
 * scenario still shows what it measured. Logs stay in test-output/faults/logs.
 */
export function recordScenario(figures: ScenarioFigures): void {
  mkdirSync(SCENARIO_DIR, { recursive: true });
  const entry = { ...figures, mode: FULL ? "full" : "lean", writtenAt: Date.now() };
  writeFileSync(
    join(SCENARIO_DIR, `${figures.scenario}.json`),
    `${JSON.stringify(entry, null, 2)}\n`,
  );
}
