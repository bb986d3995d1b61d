import { z } from "zod";
import { connectDocker } from "../../agent/docker.js";
import { buildRunnerImage, pruneRunnerImages } from "../../agent/sandbox/image.js";
import { parseCommand } from "../args.js";
import { EXIT } from "../errors.js";
import { createLogger } from "../logger.js";

/**
 * `labrun image build`: (re)builds the runner image from this machine's node.
 * `labrun image prune`: removes runner images of other labrun or node
 * versions that no container uses (each is ~100 MB).
 */
export async function image(argv: string[]): Promise<number> {
  const args = parseCommand(
    "image",
    argv,
    {},
    z.object({
      positionals: z.tuple(
        [
          z.enum(["build", "prune"], {
            message: "use `labrun image build` or `labrun image prune`",
          }),
        ],
        {
          message: "use `labrun image build` or `labrun image prune`",
        },
      ),
    }),
  );
  const docker = await connectDocker();
  if (args.positionals[0] === "prune") {
    const removed = await pruneRunnerImages(docker);
    process.stdout.write(
      removed.length > 0 ? `${removed.join("\n")}\n` : "no other runner images to remove\n",
    );
    return EXIT.ok;
  }
  const tag = await buildRunnerImage(docker, createLogger());
  process.stdout.write(`${tag}\n`);
  return EXIT.ok;
}
