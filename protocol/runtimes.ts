import * as z from "zod";

/**
 * The languages a job's program is written in. Each has its own runner image,
 * built FROM scratch from the agent machine's own interpreter: `node`
 * (runner.js) and `python` (runner.py). A job is leased only to an agent that
 * offers its runtime.
 */
export const RUNTIMES = ["node", "python"] as const;
export const Runtime = z.enum(RUNTIMES);
export type Runtime = z.infer<typeof Runtime>;

/** The program file extensions each runtime runs. */
const EXTENSIONS: Record<Runtime, RegExp> = {
  node: /\.(c|m)?js$/,
  python: /\.py$/,
};

/** The name a program gets when its client names none. */
const DEFAULT_FILENAMES: Record<Runtime, string> = { node: "main.js", python: "main.py" };

/**
 * The runtime a program file's extension means, or undefined for one no
 * runtime runs.
 *
 * @example runtimeOfFilename("prog.py") // "python"
 */
export function runtimeOfFilename(filename: string): Runtime | undefined {
  return RUNTIMES.find((runtime) => EXTENSIONS[runtime].test(filename));
}

/**
 * A job's runtime and file name from what its client sent: the runtime named,
 * else the one the file name's extension means, else node; the file name sent,
 * else the runtime's default. Returns a problem instead when the two disagree.
 *
 * @example resolveProgram({ runtime: "python" }) // { runtime: "python", filename: "main.py" }
 */
export function resolveProgram(request: {
  filename?: string | undefined;
  runtime?: Runtime | undefined;
}): { runtime: Runtime; filename: string } | { problem: string } {
  const fromName = request.filename === undefined ? undefined : runtimeOfFilename(request.filename);
  const runtime = request.runtime ?? fromName ?? "node";
  const filename = request.filename ?? DEFAULT_FILENAMES[runtime];
  if (!EXTENSIONS[runtime].test(filename)) {
    return {
      problem:
        runtime === "python"
          ? "a python program's file name must end in .py"
          : "a node program's file name must end in .js, .cjs or .mjs",
    };
  }
  return { runtime, filename };
}
