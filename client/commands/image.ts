import * as z from "zod";
import { connectDocker } from "../../agent/docker.js";
import { buildRunnerImage, pruneRunnerImages } from "../../agent/sandbox/image.js";
import { parseCommand } from "../args.js";
import { EXIT } from "../errors.js";
import { createLogger } from "../logger.js";

const USE =
  "use `labrun image build [--runtime node|python] [--python PATH]` or `labrun image prune`";

/**
 * `labrun image build [--runtime node|python]`: (re)builds a runner image
 * from this machine's node, or its python3 (`--python PATH`).
 * `labrun image prune`: removes runner images of other labrun, node or python
 * versions that no container uses.
 */
export async function image(argv: string[]): Promise<number> {
  const args = parseCommand(
    "image",
    argv,
    { runtime: { type: "string" }, python: { type: "string" } },
    z.object({
      positionals: z.tuple([z.enum(["build", "prune"], { message: USE })], { message: USE }),
      runtime: z.enum(["node", "python"], { message: "--runtime is node or python" }).optional(),
      python: z.string().min(1).optional(),
    }),
  );
  const docker = await connectDocker();
  const python = await import("../../agent/sandbox/python-image.js");
  if (args.positionals[0] === "prune") {
    const removed = [
      ...(await pruneRunnerImages(docker)),
      ...(await python.prunePythonImages(docker, currentPythonTag(python, args.python))),
    ];
    process.stdout.write(
      removed.length > 0 ? `${removed.join("\n")}\n` : "no other runner images to remove\n",
    );
    return EXIT.ok;
  }
  const tag =
    args.runtime === "python"
      ? await python.buildPythonImage(docker, createLogger(), args.python)
      : await buildRunnerImage(docker, createLogger());
  process.stdout.write(`${tag}\n`);
  return EXIT.ok;
}

/** The tag this machine's python3 would build, so prune keeps it; none without a python3. */
function currentPythonTag(
  python: typeof import("../../agent/sandbox/python-image.js"),
  path: string | undefined,
): string | undefined {
  try {
    return python.pythonImageTag(python.describePythonFor(path));
  } catch {
    return undefined;
  }
}
