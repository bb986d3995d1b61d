import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { UsageError } from "./errors.js";

/** The nearest `name` at or above `dir`, or undefined. */
function findUp(dir: string, name: string): string | undefined {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, name))) return join(at, name);
    if (dirname(at) === at) return undefined;
  }
}

/**
 * `labrun submit --typecheck`: runs the project's own `tsc --noEmit` (its
 * nearest tsconfig.json, its node_modules/.bin/tsc) before bundling, which
 * only strips types. Type errors stop the submit (exit 2) after tsc has
 * printed them; a project with no tsconfig or no tsc is said so, and the
 * program is bundled unchecked.
 */
export function typecheck(entry: string): void {
  const from = dirname(resolve(entry));
  const tsconfig = findUp(from, "tsconfig.json");
  const tsc = findUp(from, join("node_modules", ".bin", "tsc"));
  if (!tsconfig || !tsc) {
    process.stderr.write(
      `labrun: --typecheck: no ${tsconfig ? "tsc in node_modules/.bin" : "tsconfig.json"} above ${entry}; bundling without a type check\n`,
    );
    return;
  }
  // tsc's report goes to the user's terminal as it is (stdout → stderr: stdout is the result's).
  const run = spawnSync(tsc, ["--noEmit", "-p", tsconfig], { stdio: ["ignore", 2, 2] });
  if (run.error) throw new UsageError(`--typecheck: cannot run ${tsc}: ${run.error.message}`);
  if (run.status !== 0) {
    throw new UsageError(
      `--typecheck: tsc found type errors in the project of ${entry}; nothing submitted`,
    );
  }
}
