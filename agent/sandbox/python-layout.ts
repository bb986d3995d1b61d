import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { packageRoot, sharedLibraries } from "./image.js";

/** The python3 this machine has, as it describes itself. */
export const PythonInterpreter = z.object({
  /** The interpreter binary, symlinks resolved (a pyenv shim or venv link ends here). */
  executable: z.string(),
  version: z.string(),
  major: z.number().int(),
  minor: z.number().int(),
  implementation: z.string(),
  /** The standard library's folders (one, or two on lib64 layouts), symlinks resolved. */
  stdlib: z.array(z.string()).min(1),
  /** The folder of the extension modules (lib-dynload), when the build has one. */
  dynload: z.string().nullable(),
});
export type PythonInterpreter = z.infer<typeof PythonInterpreter>;

/** A python3 that cannot become a runner image, and why. */
export class PythonUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PythonUnavailableError";
  }
}

/**
 * Run by the interpreter itself (isolated, no site): where its parts are.
 * sys.executable is the real interpreter even when `python3` is a shim.
 */
const PROBE = `
import json, os, sys, sysconfig
paths = sysconfig.get_paths()
stdlib = []
for key in ("stdlib", "platstdlib"):
    path = os.path.realpath(paths[key])
    if path not in stdlib:
        stdlib.append(path)
dynload = next((p for p in sys.path if os.path.basename(p) == "lib-dynload" and os.path.isdir(p)), None)
print(json.dumps({
    "executable": os.path.realpath(sys.executable),
    "version": sys.version,
    "major": sys.version_info[0],
    "minor": sys.version_info[1],
    "implementation": sys.implementation.name,
    "stdlib": stdlib,
    "dynload": os.path.realpath(dynload) if dynload else None,
}))
`;

const described = new Map<string, PythonInterpreter>();

/**
 * What `python` (a path, or a name looked up on PATH) is; asked once per
 * process. Throws PythonUnavailableError when it is missing or not a CPython
 * 3.8+ that can be packed.
 *
 * @example describePython("python3").executable // "/usr/bin/python3.11"
 */
export function describePython(python: string): PythonInterpreter {
  const known = described.get(python);
  if (known) return known;
  let output: string;
  try {
    output = execFileSync(python, ["-I", "-S", "-c", PROBE], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 30_000,
    });
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { stderr?: string };
    const why =
      failed.code === "ENOENT"
        ? "not found"
        : (failed.stderr?.trim().split("\n").pop() ?? failed.message);
    throw new PythonUnavailableError(`${python}: ${why}`);
  }
  const parsed = PythonInterpreter.safeParse(JSON.parse(output.trim().split("\n").pop() ?? "{}"));
  if (!parsed.success) throw new PythonUnavailableError(`${python} did not describe itself`);
  const info = parsed.data;
  if (info.implementation !== "cpython" || info.major !== 3 || info.minor < 8) {
    throw new PythonUnavailableError(
      `${python} is ${info.implementation} ${info.major}.${info.minor}; the runner needs CPython 3.8 or newer`,
    );
  }
  described.set(python, info);
  return info;
}

/** Top-level folders of the standard library that a job never needs. */
const LEFT_OUT_TOP = new Set([
  "test",
  "idlelib",
  "tkinter",
  "turtledemo",
  "ensurepip",
  "site-packages",
  "dist-packages",
  "lib-dynload", // copied on its own, filtered
]);
/** Folders left out at any depth: test suites and compiled caches (rebuilt below). */
const LEFT_OUT_ANYWHERE = new Set(["tests", "test", "idle_test", "__pycache__"]);
/** Extension modules left out: test modules, a GUI, a terminal line editor, NIS. */
const LEFT_OUT_EXTENSION =
  /^(_test|_xxtestfuzz|xxlimited|_ctypes_test|_tkinter|readline|nis|ossaudiodev|xxsubtype)/;

export interface AssembledPython {
  /** The ENTRYPOINT's interpreter path (the host's own). */
  interpreter: string;
  libraries: string[];
  /** Bytes placed in rootfs/. */
  bytes: number;
}

/**
 * Lays out a build context in `context`: python.Dockerfile (the interpreter's
 * path filled in) and rootfs/ with the interpreter, the standard library (no
 * test suites, idlelib, tkinter, ensurepip, pip or site-packages) compiled to
 * unchecked-hash .pyc (the image is read-only and -B writes none), lib-dynload,
 * every shared library `ldd` lists for them, runner.py and an empty /tmp.
 * Everything keeps its own absolute path, so the interpreter finds its
 * library exactly as it does on this machine (Debian's /usr/lib/python3.X and
 * a pyenv tree alike) without any relocation.
 */
export function assemblePythonContext(context: string, info: PythonInterpreter): AssembledPython {
  const source = join(packageRoot(), "runner-image");
  const rootfs = join(context, "rootfs");
  let bytes = 0;
  const place = (from: string, to: string, mode: number) => {
    const target = join(rootfs, to);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(realpathSync(from), target);
    chmodSync(target, mode);
    bytes += statSync(target).size;
    return target;
  };
  const elfFiles: string[] = [];

  writeFileSync(
    join(context, "Dockerfile"),
    readFileSync(join(source, "python.Dockerfile"), "utf8").replace("@PYTHON@", info.executable),
  );
  elfFiles.push(place(info.executable, info.executable, 0o755));
  const binaries = [info.executable];

  for (const dir of info.stdlib) {
    copyTree(dir, dir, 0, (from, to) => place(from, to, 0o644));
  }
  if (info.dynload && existsSync(info.dynload)) {
    for (const name of readdirSync(info.dynload)) {
      if (LEFT_OUT_EXTENSION.test(name)) continue;
      const from = join(info.dynload, name);
      if (!isFile(from)) continue;
      elfFiles.push(place(from, join(info.dynload, name), 0o755));
      if (name.endsWith(".so")) binaries.push(from);
    }
  }
  const libraries = [...new Set(binaries.flatMap((binary) => sharedLibraries(binary)))];
  for (const library of libraries) elfFiles.push(place(library, library, 0o755));
  place(join(source, "runner.py"), "/runner/runner.py", 0o644);
  mkdirSync(join(rootfs, "tmp"));
  chmodSync(join(rootfs, "tmp"), 0o1777);

  bytes -= stripDebugInfo(elfFiles);
  for (const dir of info.stdlib) bytes += compileStdlib(info.executable, join(rootfs, dir), dir);
  return { interpreter: info.executable, libraries, bytes };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false; // a dangling symlink
  }
}

/** Copies the .py and data files of a standard library folder, leaving out what no job needs. */
function copyTree(
  from: string,
  to: string,
  depth: number,
  copy: (from: string, to: string) => void,
): void {
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const name = entry.name;
    const path = join(from, name);
    if (LEFT_OUT_ANYWHERE.has(name) || (depth === 0 && LEFT_OUT_TOP.has(name))) continue;
    if (depth === 0 && name.startsWith("config-")) continue; // static libpython, Makefile
    let stats: ReturnType<typeof statSync>;
    try {
      stats = statSync(path); // follows links (Debian's sitecustomize.py → /etc/…)
    } catch {
      continue;
    }
    if (stats.isDirectory()) copyTree(path, join(to, name), depth + 1, copy);
    else if (stats.isFile() && !/\.(pyc|pyo|exe)$/.test(name)) copy(path, join(to, name));
  }
}

/**
 * Drops debug sections (a pyenv build carries ~30 MB of them) with the
 * machine's `strip`, when it has one; returns the bytes saved.
 */
function stripDebugInfo(files: string[]): number {
  const before = files.reduce((sum, file) => sum + statSync(file).size, 0);
  try {
    execFileSync("strip", ["--strip-debug", ...files], { stdio: "ignore" });
  } catch {
    // No binutils here, or a file it does not know: the image is only larger.
  }
  return before - files.reduce((sum, file) => sum + statSync(file).size, 0);
}

/**
 * Compiles the copied standard library with the interpreter itself, as
 * unchecked-hash .pyc (valid whatever the files' times in the image), with the
 * paths tracebacks show set to the real ones. Returns the bytes written.
 */
function compileStdlib(python: string, copy: string, shownAs: string): number {
  try {
    execFileSync(
      python,
      [
        "-I",
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        "-d",
        shownAs,
        copy,
      ],
      { stdio: ["ignore", "ignore", "pipe"], timeout: 300_000 },
    );
  } catch {
    // A few data files that look like modules do not compile; the check after the build decides.
  }
  return treeBytes(copy, (name) => name.endsWith(".pyc"));
}

function treeBytes(dir: string, counted: (name: string) => boolean): number {
  let bytes = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) bytes += treeBytes(path, counted);
    else if (counted(entry.name)) bytes += statSync(path).size;
  }
  return bytes;
}
