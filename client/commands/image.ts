import { z } from "zod";
import { connectDocker } from "../../agent/docker.js";
import { buildRunnerImage } from "../../agent/sandbox/image.js";
import { parseCommand } from "../args.js";
import { EXIT } from "../errors.js";
import { createLogger } from "../logger.js";

/** `labrun image build`: (re)builds the runner image from this machine's node. */
export async function image(argv: string[]): Promise<number> {
  parseCommand(
    "image",
    argv,
    {},
    z.object({
      positionals: z.tuple([z.literal("build")], { message: "usage: labrun image build" }),
    }),
  );
  const tag = await buildRunnerImage(await connectDocker(), createLogger());
  process.stdout.write(`${tag}\n`);
  return EXIT.ok;
}
