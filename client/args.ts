import { type ParseArgsConfig, parseArgs } from "node:util";
import type { z } from "zod";
import { UsageError } from "./errors.js";

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
