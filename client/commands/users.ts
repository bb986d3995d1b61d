import * as z from "zod";
import { UserName } from "../../protocol/index.js";
import { LabrunClient } from "../api.js";
import { CONNECTION_OPTIONS, parseCommand } from "../args.js";
import { EXIT, UsageError } from "../errors.js";
import { auditTable, usersTable } from "../format.js";
import { resolveConnection } from "../settings.js";

const connection = () => ({
  server: z.string().url("--server must be a URL like http://127.0.0.1:7878").optional(),
  token: z.string().min(1).optional(),
  json: z.boolean(),
});

const adminClient = (flags: { server?: string | undefined; token?: string | undefined }) =>
  new LabrunClient(resolveConnection(flags, "admin"));

const Quota = (flag: string) =>
  z.coerce
    .number({ message: `--${flag} takes a whole number` })
    .int(`--${flag} takes a whole number`)
    .min(0, `--${flag} takes a whole number ≥ 0`)
    .optional();

const USAGE = "users: use `labrun users add|list|rm|token …` (see labrun --help)";

/**
 * `labrun users add NAME [--max-running N] [--max-queued N] [--weight W]`
 * (prints the token once), `users list`, `users rm NAME`,
 * `users token NAME --rotate`. Admin token.
 */
export async function users(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === "add") return add(rest);
  if (action === "list" || action === undefined || action.startsWith("-")) {
    return list(action === "list" ? rest : argv);
  }
  if (action === "rm") return remove(rest);
  if (action === "token") return rotate(rest);
  throw new UsageError(USAGE);
}

async function add(argv: string[]): Promise<number> {
  const args = parseCommand(
    "users add",
    argv,
    {
      ...CONNECTION_OPTIONS,
      "max-running": { type: "string" },
      "max-queued": { type: "string" },
      weight: { type: "string" },
    },
    z.object({
      ...connection(),
      positionals: z.tuple([UserName], { message: "expects one user name" }),
      "max-running": Quota("max-running"),
      "max-queued": Quota("max-queued"),
      weight: z.coerce
        .number({ message: "--weight takes a number > 0" })
        .positive("--weight takes a number > 0")
        .optional(),
    }),
  );
  const [name] = args.positionals;
  const added = await adminClient(args).addUser({
    name,
    ...(args["max-running"] !== undefined ? { maxRunning: args["max-running"] } : {}),
    ...(args["max-queued"] !== undefined ? { maxQueued: args["max-queued"] } : {}),
    ...(args.weight !== undefined ? { weight: args.weight } : {}),
  });
  if (args.json) {
    process.stdout.write(`${JSON.stringify(added)}\n`);
  } else {
    process.stdout.write(
      `user ${added.name} added; their token (shown only now, give it to them):\n${added.token}\n`,
    );
  }
  return EXIT.ok;
}

async function list(argv: string[]): Promise<number> {
  const args = parseCommand(
    "users list",
    argv,
    CONNECTION_OPTIONS,
    z.object({ ...connection(), positionals: z.tuple([], { message: "takes no arguments" }) }),
  );
  const all = await adminClient(args).users();
  process.stdout.write(
    args.json ? `${JSON.stringify({ users: all }, null, 2)}\n` : `${usersTable(all)}\n`,
  );
  return EXIT.ok;
}

async function remove(argv: string[]): Promise<number> {
  const args = parseCommand(
    "users rm",
    argv,
    CONNECTION_OPTIONS,
    z.object({
      ...connection(),
      positionals: z.tuple([UserName], { message: "expects one user name" }),
    }),
  );
  const removed = await adminClient(args).removeUser(args.positionals[0]);
  process.stdout.write(
    args.json
      ? `${JSON.stringify(removed)}\n`
      : `user ${removed.name} removed: their token is refused; ${removed.cancelled} queued job(s) cancelled, ${removed.running} running job(s) will finish\n`,
  );
  return EXIT.ok;
}

async function rotate(argv: string[]): Promise<number> {
  const args = parseCommand(
    "users token",
    argv,
    { ...CONNECTION_OPTIONS, rotate: { type: "boolean", default: false } },
    z.object({
      ...connection(),
      positionals: z.tuple([UserName], { message: "expects one user name" }),
      rotate: z.literal(true, {
        message: "--rotate is required (a token is shown only when it is made)",
      }),
    }),
  );
  const rotated = await adminClient(args).rotateUserToken(args.positionals[0]);
  process.stdout.write(
    args.json
      ? `${JSON.stringify(rotated)}\n`
      : `user ${rotated.name} has a new token (the old one is refused from now on):\n${rotated.token}\n`,
  );
  return EXIT.ok;
}

/** `labrun audit [--limit N]`: admin actions, newest first (admin token). */
export async function audit(argv: string[]): Promise<number> {
  const args = parseCommand(
    "audit",
    argv,
    { ...CONNECTION_OPTIONS, limit: { type: "string" } },
    z.object({
      ...connection(),
      positionals: z.tuple([], { message: "takes no positional arguments" }),
      limit: z.coerce.number().int().min(1).max(500).optional(),
    }),
  );
  const page = await adminClient(args).audit({ limit: args.limit });
  process.stdout.write(
    args.json ? `${JSON.stringify(page, null, 2)}\n` : `${auditTable(page.entries)}\n`,
  );
  return EXIT.ok;
}
