import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OUTPUT_DIR } from "./helpers/processes.js";
import { SCENARIO_DIR, type ScenarioFigures } from "./helpers/report.js";

/** The run's report: test-output/faults-report.json. */
export const REPORT_FILE = join(OUTPUT_DIR, "faults-report.json");

type Entry = ScenarioFigures & { mode: string; writtenAt: number };

/**
 * Global setup of the fault projects: remembers when the run started; at the
 * end gathers the figures the scenarios of this run recorded into one report,
 * and prints a table when LABRUN_FAULTS_REPORT=1. Both fault projects use it;
 * the first setup of a run wins, so one run gives one report.
 */
export function setup(): void {
  if (process.env.LABRUN_FAULTS_RUN_STARTED) return;
  process.env.LABRUN_FAULTS_RUN_STARTED = String(Date.now());
  // Logs of earlier runs go; this run's stay for post-mortems.
  rmSync(join(OUTPUT_DIR, "faults", "logs"), { recursive: true, force: true });
}

export function teardown(): void {
  const since = Number(process.env.LABRUN_FAULTS_RUN_STARTED ?? 0);
  const entries: Entry[] = existsSync(SCENARIO_DIR)
    ? readdirSync(SCENARIO_DIR)
        .filter((file) => file.endsWith(".json"))
        .map((file) => JSON.parse(readFileSync(join(SCENARIO_DIR, file), "utf8")) as Entry)
        .filter((entry) => entry.writtenAt >= since)
        .sort((a, b) => a.scenario.localeCompare(b.scenario))
    : [];
  if (entries.length === 0) return;
  const report = {
    generatedAt: new Date().toISOString(),
    mode: process.env.FAULTS_FULL === "1" ? "full" : "lean",
    totals: {
      jobsSubmitted: sum(entries, "jobsSubmitted"),
      lost: sum(entries, "lost"),
      duplicated: sum(entries, "duplicated"),
      rerun: sum(entries, "rerun"),
    },
    scenarios: entries.map(({ writtenAt: _writtenAt, ...entry }) => entry),
  };
  mkdirSync(OUTPUT_DIR, { recursive: true });
  writeFileSync(REPORT_FILE, `${JSON.stringify(report, null, 2)}\n`);
  // Each fault project tears down with this: print a table once per new content.
  const printed = JSON.stringify(report.scenarios);
  if (process.env.LABRUN_FAULTS_REPORT === "1" && process.env.LABRUN_FAULTS_PRINTED !== printed) {
    process.env.LABRUN_FAULTS_PRINTED = printed;
    printTable(report.scenarios, REPORT_FILE);
  }
}

function sum(entries: Entry[], key: "jobsSubmitted" | "lost" | "duplicated" | "rerun"): number {
  return entries.reduce((total, entry) => total + entry[key], 0);
}

function printTable(scenarios: ScenarioFigures[], file: string): void {
  const rows = scenarios.map((entry) => [
    entry.scenario,
    String(entry.jobsSubmitted),
    String(entry.succeeded),
    String(entry.lost),
    String(entry.duplicated),
    String(entry.rerun),
    Object.entries(entry.recoveryMs)
      .map(([name, ms]) => `${name}=${ms ?? "-"}`)
      .join(" "),
  ]);
  const header = ["scenario", "jobs", "ok", "lost", "dup", "rerun", "recovery (ms)"];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ");
  console.log(`\nlabrun fault suite (${file})`);
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
