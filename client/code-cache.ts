/**
 * Runs one of the CLI's CommonJS command bundles (scripts/bundle-cli.mjs)
 * with V8's code cache: the code V8 compiled for a bundle on one run is kept
 * in the user's cache folder and handed back to V8 on the next, so a command
 * does not parse and compile ~0.5 MB of zod and labrun again on every run.
 * Node 22+ offers this for modules (`module.enableCompileCache`); Node 20 does
 * not, but has always taken cached data for a `vm.Script`, which this uses on
 * every Node version alike.
 *
 * A cache file is named by the bundle, its size and mtime and the Node
 * version, so a rebuilt bundle or another Node never gets a stale one (V8
 * also rejects cached data that does not fit, and the bundle then compiles
 * as if there were none), and by the command that ran: V8 keeps the code of
 * the functions a run compiled, so `status` run from the cache `submit`
 * wrote would compile its own functions (the HTTP answer's parsing, the
 * output) again on every run. Each command of a bundle gets the cache of its
 * own runs. Without a usable cache folder (read-only home) or with
 * NODE_DISABLE_COMPILE_CACHE set, the bundle just compiles each time.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/** The folder of the cache files: `$XDG_CACHE_HOME/labrun/code-cache` (~/.cache by default). */
export function codeCacheDir(env = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "labrun", "code-cache");
}

/**
 * Evaluates the CommonJS bundle at `file` (an absolute path) and returns its
 * `module.exports`. Each bundle is evaluated at most once per process.
 * `command` (the CLI's command word, `status`) picks the cache of that
 * command's runs; a word that is not a plain lower-case name shares one.
 */
export function loadCachedBundle(file: string, command = ""): Record<string, unknown> {
  const loaded = evaluated.get(file);
  if (loaded) return loaded;
  const source = readFileSync(file, "utf8");
  const cache = process.env.NODE_DISABLE_COMPILE_CACHE ? null : cacheOf(file, command);
  const cachedData = cache === null ? undefined : readIfThere(cache.file);
  // Node's own CommonJS wrapper, on the source's first line so that a stack's
  // line numbers are the bundle's.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: file, ...(cachedData ? { cachedData } : {}) },
  );
  if (cache !== null && (cachedData === undefined || script.cachedDataRejected)) {
    // Written as the process exits, when V8 has compiled what this command
    // ran: the next run gets those functions too, not only the top level.
    process.once("exit", () => writeCache(cache, () => script.createCachedData()));
  }
  const module = { exports: {} as Record<string, unknown> };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, createRequire(file), module, file, dirname(file));
  evaluated.set(file, module.exports);
  return module.exports;
}

const evaluated = new Map<string, Record<string, unknown>>();

/** Plain command words only: the name goes into a file name. */
const COMMAND_WORD = /^[a-z]{1,32}$/;

interface CacheFile {
  /** `…/jobs.cjs-SIZE-MTIME-vNODE-COMMAND.v8cache` */
  file: string;
  /** `jobs.cjs-`: what every cache file of the bundle's builds starts with. */
  bundle: string;
  /** `jobs.cjs-SIZE-MTIME-vNODE-`: what every cache file of this build starts with. */
  build: string;
}

function cacheOf(file: string, command: string): CacheFile | null {
  try {
    const { size, mtimeMs } = statSync(file);
    const bundle = `${basename(file)}-`;
    const build = `${bundle}${size}-${Math.trunc(mtimeMs)}-${process.version}-`;
    const variant = COMMAND_WORD.test(command) ? command : "any";
    return { file: join(codeCacheDir(), `${build}${variant}.v8cache`), bundle, build };
  } catch {
    return null;
  }
}

function readIfThere(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Writes the cache next to its final name and renames it into place, so a
 * command running at the same time reads a whole file or none, then removes
 * the bundle's caches of earlier builds (every command's; this build's other
 * commands keep theirs). Any failure (no home, a full disk) only means the
 * next run compiles again.
 */
function writeCache({ file, bundle, build }: CacheFile, data: () => Buffer): void {
  try {
    const folder = dirname(file);
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    const partial = `${file}.${process.pid}.tmp`;
    writeFileSync(partial, data(), { mode: 0o600 });
    renameSync(partial, file);
    for (const name of readdirSync(folder)) {
      if (name.startsWith(bundle) && name.endsWith(".v8cache") && !name.startsWith(build)) {
        rmSync(join(folder, name), { force: true });
      }
    }
  } catch {
    // Run uncached next time as well.
  }
}
