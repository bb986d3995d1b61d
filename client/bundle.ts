import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { BuildFailure, Message, Metafile, Plugin } from "esbuild";
import { MAX_PROGRAM_BYTES, pathProblem } from "../protocol/programs.js";
import { cachedBundle, keepBundle } from "./bundle-cache.js";
import { UsageError } from "./errors.js";
import type { ProgramFields } from "./program.js";

/**
 * The Node major the bundle targets: the oldest labrun runs on (package.json
 * engines), so a bundle runs in any agent's runner, whose node is its
 * machine's own.
 */
export const RUNNER_NODE_TARGET = "node20";

// The bundle is an ES module. CommonJS code inside it still finds what Node
// gives a CommonJS module: `require` (for built-ins, and what esbuild leaves
// dynamic), `__filename` and `__dirname` (the bundle's own, under the job's
// folder). esbuild renames a program's own top-level `require`/`__dirname`
// around these; free uses of __dirname/__filename are pointed at them by
// `define`, so a program's own declarations of those names are left alone.
const BANNER = [
  'import { createRequire as __labrunCreateRequire } from "node:module";',
  'import { fileURLToPath as __labrunFileURLToPath } from "node:url";',
  "const require = __labrunCreateRequire(import.meta.url);",
  "const __labrun_filename = __labrunFileURLToPath(import.meta.url);",
  'const __labrun_dirname = __labrun_filename.slice(0, __labrun_filename.lastIndexOf("/"));',
].join(" ");

/**
 * Bundles a JavaScript or TypeScript entry with everything it imports
 * (relative files, JSON, packages from the nearest node_modules) into one
 * ES module with its source map beside it (`src/main.mjs.map`), sent as
 * `files` + `entry`: the bundle sits where the entry would in the project,
 * so the runner's stack traces name `src/lib/fail.ts:2`. Refused (UsageError, exit 2) with the
 * module and the reason: a native addon, an import that cannot be resolved,
 * a bundle over `maxBytes`. esbuild's warnings are printed and do not stop it.
 * A bundle none of whose inputs changed since the last submit comes from the
 * cache (client/bundle-cache.ts) without loading esbuild.
 */
export async function bundleProgram(
  entry: string,
  maxBytes: number = MAX_PROGRAM_BYTES,
): Promise<ProgramFields> {
  const cached = cachedBundle(entry, maxBytes);
  if (cached) {
    for (const warning of cached.warnings) process.stderr.write(warning);
    return cached.fields;
  }
  const build = buildWithGoCollectorOff(loadEsbuild());
  const file = resolve(entry);
  const root = projectRoot(dirname(file));
  const name = bundleName(relative(root, file));
  let result: Awaited<ReturnType<typeof build>> & { metafile: Metafile };
  try {
    result = await build({
      entryPoints: [file],
      absWorkingDir: root,
      outfile: join(root, name),
      bundle: true,
      write: false,
      metafile: true,
      platform: "node",
      format: "esm",
      target: RUNNER_NODE_TARGET,
      // The map is a file of its own beside the bundle: V8 never scans it
      // as part of the code, and the runner parses it only for a stack.
      sourcemap: "linked",
      // Mappings are enough for a stack; the sources would double the size.
      sourcesContent: false,
      banner: { js: BANNER },
      define: { __dirname: "__labrun_dirname", __filename: "__labrun_filename" },
      plugins: [refuseNativeAddons],
      logLevel: "silent",
      // A require()/import() of a computed name is left as it is (only a
      // built-in can load at run time): said, as a warning, not hidden.
      logOverride: {
        "unsupported-require-call": "warning",
        "unsupported-dynamic-import": "warning",
      },
    });
  } catch (error) {
    throw refusal(entry, error);
  }
  const warnings = result.warnings.map(
    (warning) => `labrun: warning: ${describe(warning)} (submitted anyway)\n`,
  );
  for (const warning of warnings) process.stderr.write(warning);
  const addon = nativePackage(root, result.metafile);
  if (addon) {
    throw new UsageError(
      `cannot bundle ${entry}: ${addon} is a native addon package (binding.gyp); a job runs JavaScript only`,
    );
  }
  const outputs = result.outputFiles ?? [];
  const code = outputs.find((file) => !file.path.endsWith(".map"));
  if (!code) throw new UsageError(`cannot bundle ${entry}: esbuild wrote nothing`);
  const bytes = outputs.reduce((sum, file) => sum + file.contents.length, 0);
  if (bytes > maxBytes) {
    throw new UsageError(
      `cannot submit ${entry}: its bundle is ${bytes} bytes, more than the ${maxBytes} a program may be (largest module: ${largestInput(result.metafile)})`,
    );
  }
  // The bundle first (entry), then its map, `src/main.mjs.map` beside it.
  const files = [code, ...outputs.filter((file) => file !== code)].map((file) => ({
    path: relative(root, file.path).split(sep).join("/"),
    content: file.text,
  }));
  const fields = { files, entry: name };
  const inputs = Object.keys(result.metafile.inputs).map((input) => resolve(root, input));
  keepBundle(entry, maxBytes, root, inputs, fields, warnings);
  return fields;
}

/**
 * esbuild's API, through require: it is a CommonJS package, and Node's ESM
 * loader takes ~100 ms more than require() to load it (it scans the whole
 * module for its exports first).
 */
function loadEsbuild(): typeof import("esbuild") {
  return createRequire(import.meta.url)("esbuild") as typeof import("esbuild");
}

/**
 * Go collector settings for the esbuild service, unless the user set their
 * own. The service is a Go process that lives as long as this CLI run and
 * does one build or two: at Go's default (GOGC=100) its collector ran
 * through most of a cold build, and a TypeScript entry importing zod took
 * 383 ms from loading this module to the bundle here, against 327 ms with
 * the collector off (20 runs each, alternated). GOMEMLIMIT keeps that
 * bounded: past 512 MiB, Go collects again (an 11 MB bundle of typescript,
 * zod, pino and hono peaked at 343 MB off, 249–283 MB at the default).
 */
export function goCollectorSettings(env: NodeJS.ProcessEnv): Record<string, string> {
  if (env.GOGC !== undefined || env.GOMEMLIMIT !== undefined) return {};
  return { GOGC: "off", GOMEMLIMIT: "512MiB" };
}

/**
 * esbuild's `build`, whose service (spawned by the first build, with this
 * process's environment) gets goCollectorSettings. The settings are in
 * process.env only while `build` spawns it, synchronously, so no other
 * child of this process inherits them.
 */
function buildWithGoCollectorOff(esbuild: typeof import("esbuild")): typeof esbuild.build {
  return ((options: Parameters<typeof esbuild.build>[0]) => {
    const settings = goCollectorSettings(process.env);
    for (const [name, value] of Object.entries(settings)) process.env[name] = value;
    try {
      return esbuild.build(options);
    } finally {
      for (const name of Object.keys(settings)) delete process.env[name];
    }
  }) as typeof esbuild.build;
}

/** The nearest folder at or above `dir` with a package.json (the project), else `dir`. */
function projectRoot(dir: string): string {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, "package.json"))) return at;
    if (dirname(at) === at) return dir;
  }
}

/** The bundle's path in the job's folder: the entry's own, as an ES module (`src/main.ts` → `src/main.mjs`). */
function bundleName(relativeEntry: string): string {
  const name = `${relativeEntry
    .split(sep)
    .join("/")
    .replace(/\.(c|m)?(j|t)s$/, "")}.mjs`;
  return pathProblem(name) === undefined ? name : "main.mjs";
}

/** A `.node` file anywhere in the import graph stops the bundle, naming who imports it. */
const refuseNativeAddons: Plugin = {
  name: "labrun-refuse-native-addons",
  setup(esbuild) {
    esbuild.onResolve({ filter: /\.node$/ }, (args) => ({
      errors: [
        {
          text: `${args.path} is a native addon (.node); a job runs JavaScript only, with no compiled modules`,
        },
      ],
    }));
  },
};

/** A bundled package that builds a native addon (binding.gyp, or `gypfile`), or undefined. */
function nativePackage(root: string, metafile: Metafile): string | undefined {
  const checked = new Set<string>();
  for (const input of Object.keys(metafile.inputs)) {
    const at = input.lastIndexOf("node_modules/");
    if (at === -1) continue;
    const rest = input.slice(at + "node_modules/".length).split("/");
    const packageName = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
    const dir = resolve(root, input.slice(0, at), "node_modules", packageName ?? "");
    if (checked.has(dir)) continue;
    checked.add(dir);
    if (existsSync(join(dir, "binding.gyp"))) return packageName;
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (manifest?.gypfile === true) return packageName;
    } catch {
      // No readable manifest: nothing says it is native.
    }
  }
  return undefined;
}

function largestInput(metafile: Metafile): string {
  const [path, input] =
    Object.entries(metafile.inputs).sort(([, a], [, b]) => b.bytes - a.bytes)[0] ?? [];
  return path === undefined ? "none" : `${path}, ${input?.bytes} bytes`;
}

/** `file:line: text` of an esbuild message. */
function describe(message: Message): string {
  const where = message.location ? `${message.location.file}:${message.location.line}: ` : "";
  return `${where}${message.text}`;
}

/** esbuild's first error as one line; an unresolved import says what to do. */
function refusal(entry: string, error: unknown): UsageError {
  const first = (error as Partial<BuildFailure>).errors?.[0];
  if (!first) return new UsageError(`cannot bundle ${entry}: ${(error as Error).message}`);
  const hint = /^Could not resolve/.test(first.text)
    ? " (not found: install the package in the project's node_modules, or fix the path)"
    : "";
  return new UsageError(`cannot bundle ${entry}: ${describe(first)}${hint}`);
}
