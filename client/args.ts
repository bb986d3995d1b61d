import { type ParseArgsConfig, parseArgs } from "node:util";
import * as z from "zod";
import { serverListText } from "../protocol/servers.js";
import { UsageError } from "./errors.js";
import { parseDuration, parseMemoryMb } from "./units.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Flags every command that talks to a coordinator accepts. */
export const CONNECTION_OPTIONS = {
  server: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
} as const satisfies Options;

/**
 * Parses a command's argv with node:util parseArgs, then validates the result
 * with a zod schema; any problem becomes a UsageError (exit 2), never a stack.
 */
export function parseCommand<T extends z.ZodType>(
  command: string,
  argv: string[],
  options: Options,
  schema: T,
): z.infer<T> {
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(`${command}: ${(error as Error).message}`);
  }
  const result = schema.safeParse({ ...parsed.values, positionals: parsed.positionals });
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
    throw new UsageError(`${command}: ${where}${issue?.message ?? "invalid arguments"}`);
  }
  return result.data;
}

/** A parse that fails adds this message to the zod issues and yields nothing. */
export const parsedFlag = <T>(parse: (text: string) => T | undefined, message: string) =>
  z.string().transform((text, ctx) => {
    const value = parse(text);
    if (value === undefined) {
      ctx.addIssue({ code: "custom", message });
      return z.NEVER;
    }
    return value;
  });

/**
 * A duration flag (`10s`, `500ms`, `7d`) as ms; `example` goes into the error.
 *
 * @example
 * z.object({ timeout: durationFlag("timeout", "10s, 500ms, 2m").optional() })
 */
export const durationFlag = (flag: string, example: string) =>
  parsedFlag(parseDuration, `--${flag}: use e.g. ${example}`);

/** A memory-size flag (`256m`, `1g`) as MiB; `example` goes into the error. */
export const memoryFlag = (flag: string, example: string) =>
  parsedFlag(parseMemoryMb, `--${flag}: use e.g. ${example}`);

/**
 * `--server`: a coordinator's URL, or several of one store separated by
 * commas (`URL1,URL2`: clients and agents fail over between them).
 */
export const serverFlag = () =>
  serverListText(
    "--server must be a URL like http://127.0.0.1:7878, or several separated by commas",
  );

/** How an agent reaches its coordinator: `labrun agent` and `labrun agent install`. */
export const AGENT_JOIN = {
  server: z
    .string({ message: "--server is required (the coordinator's URL; or LABRUN_SERVER)" })
    .pipe(serverFlag()),
  token: z
    .string({ message: "--token is required (the agent join token; or LABRUN_AGENT_TOKEN)" })
    .min(1, "--token is required (the agent join token; or LABRUN_AGENT_TOKEN)"),
};
