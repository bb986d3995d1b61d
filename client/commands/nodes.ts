import * as z from "zod";
import type { NodeInfo } from "../../protocol/index.js";
import { LabrunClient } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand, serverFlag } from "../args.js";
import { EXIT, UsageError } from "../errors.js";
import { nodesTable } from "../format.js";
import { resolveConnection } from "../settings.js";

const Connection = {
  server: serverFlag().optional(),
  token: z.string().min(1).optional(),
  json: z.boolean(),
};

const ListArgs = z.object({
  ...Connection,
  positionals: z.tuple([], { message: "takes no arguments, or: drain|resume|rm NAME" }),
});

const Action = z.enum(["drain", "resume", "rm"], {
  message: "nodes: use `labrun nodes`, or `labrun nodes drain|resume|rm NAME`",
});
const ActionArgs = z.object({
  ...Connection,
  positionals: z.tuple([Action, z.string().min(1)], {
    message: "nodes: use `labrun nodes drain|resume|rm NAME` (a node's name or id)",
  }),
});

/**
 * `labrun nodes`: the lab's machines as a table (admin token);
 * `labrun nodes drain|resume|rm NAME`: take one out of service (it finishes
 * its jobs), put it back, or forget it (its jobs are queued again).
 */
export async function nodes(argv: string[]): Promise<number> {
  if (argv[0] === undefined || argv[0].startsWith("-")) {
    const args = parseCommand("nodes", argv, CONNECTION_OPTIONS, ListArgs);
    const list = await new LabrunClient(resolveConnection(args, "admin")).nodes();
    process.stdout.write(
      args.json ? `${JSON.stringify({ nodes: list }, null, 2)}\n` : `${nodesTable(list)}\n`,
    );
    return EXIT.ok;
  }
  const args = parseCommand("nodes", argv, CONNECTION_OPTIONS, ActionArgs);
  const [action, which] = args.positionals;
  const client = new LabrunClient(resolveConnection(args, "admin"));
  const node = pickNode(await client.nodes(), which, action);
  let after: NodeInfo | null = null;
  if (action === "drain") after = await client.drain(node.id);
  else if (action === "resume") after = await client.resume(node.id);
  else await client.removeNode(node.id);

  if (args.json) {
    process.stdout.write(`${JSON.stringify(after ?? { id: node.id, removed: true }, null, 2)}\n`);
  } else if (after) {
    const note = action === "drain" ? ` (${after.running} running job(s) will finish)` : "";
    process.stdout.write(`${after.name} (${after.id}) is ${after.state}${note}\n`);
  } else {
    process.stdout.write(`${node.name} (${node.id}) removed; its jobs are queued again\n`);
  }
  return EXIT.ok;
}

/**
 * The node meant by a name or an id. An agent that registered again under
 * the same name leaves its old record behind as `lost`: a name then means
 * the live one; several live ones need the id.
 */
export function pickNode(list: NodeInfo[], which: string, action: string): NodeInfo {
  const byId = list.find((node) => node.id === which);
  if (byId) return byId;
  const named = list.filter((node) => node.name === which);
  const live = named.filter((node) => node.state !== "lost");
  const candidates = live.length > 0 ? live : named;
  const [only, ...others] = candidates;
  if (!only) {
    const known = list.map((node) => node.name).join(", ") || "none";
    throw new UsageError(`no node named or with id "${which}" (nodes: ${known})`);
  }
  if (others.length > 0) {
    const ids = candidates.map((node) => `${node.id} (${node.state})`).join(", ");
    throw new UsageError(`several nodes are named "${which}": ${ids} — ${action} one by its id`);
  }
  return only;
}
