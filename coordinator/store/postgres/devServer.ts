import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** scripts/ensure-postgres.sh, found upwards from here (the source and dist/ sit at different depths). */
function script(): string {
  for (
    let dir = dirname(fileURLToPath(import.meta.url));
    dir !== dirname(dir);
    dir = dirname(dir)
  ) {
    const candidate = join(dir, "scripts", "ensure-postgres.sh");
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`scripts/ensure-postgres.sh not found above ${import.meta.url}`);
}

/**
 * The URL of the local PostgreSQL that scripts/ensure-postgres.sh runs
 * (started, and set up the first time, if need be), with database
 * `database` created if missing. For tests and benches on one machine.
 *
 * @example
 * const url = ensureDevPostgres("labrun_bench"); // postgres://postgres@127.0.0.1:55432/labrun_bench
 */
export function ensureDevPostgres(database?: string): string {
  const args = database === undefined ? [script()] : [script(), "--create-db", database];
  return execFileSync("bash", args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}
