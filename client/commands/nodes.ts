import { z } from "zod";
import { LabrunClient } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand } from "../args.js";
import { EXIT } from "../errors.js";
import { nodesTable } from "../format.js";
import { resolveConnection } from "../settings.js";

const NodesArgs = z.object({
  server: z.string().url("--server must be a URL like http://127.0.0.1:7878").optional(),
  token: z.string().min(1).optional(),
  json: z.boolean(),
  positionals: z.tuple([], { message: "takes no positional arguments" }),
});

/** `labrun nodes`: the lab's machines (admin token). */
export async function nodes(argv: string[]): Promise<number> {
  const args = parseCommand("nodes", argv, CONNECTION_OPTIONS, NodesArgs);
  const list = await new LabrunClient(resolveConnection(args, "admin")).nodes();
  process.stdout.write(
    args.json ? `${JSON.stringify({ nodes: list }, null, 2)}\n` : `${nodesTable(list)}\n`,
  );
  return EXIT.ok;
}
