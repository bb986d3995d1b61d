import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { isBuiltin } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
// The modules themselves, not protocol/index.js: `labrun submit` then builds
// only the shapes it uses (CLI start-up, issue 13).
import { ProgramFilename } from "../protocol/jobs.js";
import { MAX_PROGRAM_BYTES, MAX_PROGRAM_FILES, type ProgramFile } from "../protocol/programs.js";
import { type Runtime, runtimeOfFilename } from "../protocol/runtimes.js";
import { UsageError } from "./errors.js";

/** A job's or batch's program fields, as `labrun submit` and `labrun map` send them. */
export interface ProgramFields {
  source?: string;
  filename?: string;
  files?: ProgramFile[];
  entry?: string;
}

/** Extensions `labrun submit` bundles (DESIGN.md §7); TypeScript ones always. */
const BUNDLED = /\.(c|m)?(j|t)s$/;
const TYPESCRIPT = /\.(c|m)?ts$/;

/**
 * The program a `labrun submit FILE|DIR` or `labrun map` argument names:
 * a directory runs its package.json `main`; a JavaScript or TypeScript entry
 * that imports anything but Node's built-ins is bundled with esbuild (loaded
 * only then: a self-contained file is sent as it is, at no cost); anything
 * else is sent as one file. A program that cannot be bundled is a UsageError
 * (exit 2) naming the module and why; nothing is submitted.
 */
export async function readProgram(
  argument: string,
  options: { runtime?: Runtime | undefined; typecheck?: boolean },
): Promise<{ fields: ProgramFields; runtime: Runtime }> {
  const entry = entryOf(argument);
  const runtime = options.runtime ?? runtimeOfFilename(entry) ?? "node";
  const source = readText(entry, "program");
  if (runtime === "node" && BUNDLED.test(entry) && needsBundle(entry, source)) {
    const { bundleProgram } = await import("./bundle.js");
    if (options.typecheck && TYPESCRIPT.test(entry)) {
      const { typecheck } = await import("./typecheck.js");
      typecheck(entry);
    }
    return { fields: await bundleProgram(entry), runtime };
  }
  if (runtime === "python" && /\.py$/.test(entry)) {
    const folder = pythonFolder(entry, source);
    if (folder) return { fields: folder, runtime };
  }
  return { fields: { source, filename: programFilename(entry, runtime) }, runtime };
}

// `import a.b, c` and `from a.b import c` at the start of a line: the top-level module names.
const PYTHON_IMPORTS = /^[ \t]*(?:from[ \t]+([A-Za-z_][\w]*)|import[ \t]+([^\n#;]+))/gm;
/** Folders never sent with a Python program: caches, virtual environments, VCS data. */
const PYTHON_SKIPPED = new Set(["__pycache__", "node_modules", "venv", ".venv", "site-packages"]);

/**
 * A Python entry that imports a module of its own folder (`helper.py`, or a
 * package `lib/`) is sent with every `.py` file under that folder, the entry
 * at its top (the runner puts the entry's folder on `sys.path`, as running
 * the script would). An entry that imports only the standard library is sent
 * alone, as before: undefined.
 */
function pythonFolder(entry: string, source: string): ProgramFields | undefined {
  const folder = dirname(resolve(entry));
  const names = new Set<string>();
  for (const match of source.matchAll(PYTHON_IMPORTS)) {
    if (match[1]) names.add(match[1]);
    for (const part of (match[2] ?? "").split(",")) {
      const name = part.trim().split(/[\s.]/)[0];
      if (name) names.add(name);
    }
  }
  const local = [...names].some(
    (name) =>
      existsSync(join(folder, `${name}.py`)) || existsSync(join(folder, name, "__init__.py")),
  );
  if (!local) return undefined;
  const files: ProgramFile[] = [];
  let bytes = 0;
  const walk = (dir: string, prefix: string) => {
    for (const item of readdirSync(dir, { withFileTypes: true })) {
      if (item.name.startsWith(".") || PYTHON_SKIPPED.has(item.name)) continue;
      const path = `${prefix}${item.name}`;
      if (item.isDirectory()) walk(join(dir, item.name), `${path}/`);
      else if (item.isFile() && item.name.endsWith(".py")) {
        const content = readText(join(dir, item.name), "program");
        bytes += Buffer.byteLength(content);
        files.push({ path, content });
        if (files.length > MAX_PROGRAM_FILES || bytes > MAX_PROGRAM_BYTES) {
          throw new UsageError(
            `${entry}'s folder holds more .py files than a program may (${MAX_PROGRAM_FILES} files, ${MAX_PROGRAM_BYTES} bytes); give the program a folder of its own`,
          );
        }
      }
    }
  };
  walk(folder, "");
  return { files, entry: basename(entry) };
}

/** A file as it is, or a directory's package.json `main` (index.js when it names none). */
function entryOf(argument: string): string {
  let isDirectory = false;
  try {
    isDirectory = statSync(argument).isDirectory();
  } catch {
    // Not there: readText says so, naming the file.
  }
  if (!isDirectory) return argument;
  const manifest = join(argument, "package.json");
  let main = "index.js";
  if (existsSync(manifest)) {
    try {
      const parsed = JSON.parse(readFileSync(manifest, "utf8")) as { main?: unknown };
      if (typeof parsed.main === "string" && parsed.main !== "") main = parsed.main;
    } catch (error) {
      throw new UsageError(`${manifest} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const base = resolve(argument, main);
  // As Node resolves a main: the name itself, then with an extension, then a folder's index.
  const tried = ["", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", "/index.js", "/index.ts"];
  for (const suffix of tried) {
    const candidate = `${base}${suffix}`;
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new UsageError(
    `${argument} is a folder, and its entry ${main} (package.json main, or index.js) is not there`,
  );
}

// Module names in import/require/export-from statements, found by text: a
// false find (a name in a comment) only costs a bundle, never a wrong program.
const SPECIFIERS =
  /\brequire\s*\(\s*(["'`])([^"'`\n]+)\1\s*\)|\bimport\s*\(\s*(["'`])([^"'`\n]+)\3|\bfrom\s*(["'])([^"'\n]+)\5|\bimport\s*(["'])([^"'\n]+)\7/g;

/**
 * Whether an entry must be bundled: TypeScript always; JavaScript when it
 * names any module that is not a Node built-in.
 */
export function needsBundle(entry: string, source: string): boolean {
  if (TYPESCRIPT.test(entry)) return true;
  for (const match of source.matchAll(SPECIFIERS)) {
    const name = match[2] ?? match[4] ?? match[6] ?? match[8] ?? "";
    if (!isBuiltin(name)) return true;
  }
  return false;
}

export function readText(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(
      `cannot read the ${what} file ${file} (${code ?? (error as Error).message})`,
    );
  }
}

/**
 * The runner picks CommonJS or ESM from the extension; a name the runtime
 * does not run is sent as its default (main.js, main.py).
 */
export function programFilename(file: string, runtime: Runtime): string {
  const name = basename(file).replace(/[^A-Za-z0-9_.-]/g, "_");
  const fits = ProgramFilename.safeParse(name).success && runtimeOfFilename(name) === runtime;
  return fits ? name : runtime === "python" ? "main.py" : "main.js";
}
