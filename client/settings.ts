import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import * as z from "zod";
import { DEFAULT_HOST, DEFAULT_PORT } from "../protocol/addresses.js";
import { serverFlag } from "./args.js";
import { UsageError } from "./errors.js";

/** Where `labrun up`/`coordinator` keep their data: LABRUN_DATA_DIR > XDG > ~/.local/share. */
export function defaultDataDir(env = process.env): string {
  if (env.LABRUN_DATA_DIR) return env.LABRUN_DATA_DIR;
  const base = env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  return join(base, "labrun");
}

/** The client config file: LABRUN_CONFIG > $XDG_CONFIG_HOME/labrun > ~/.config/labrun. */
export function configPath(env = process.env): string {
  if (env.LABRUN_CONFIG) return env.LABRUN_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(base, "labrun", "config.json");
}

export const ClientConfigFile = z.object({
  /** One coordinator, or several of one store: `URL1,URL2`. */
  server: serverFlag().optional(),
  token: z.string().min(1).optional(),
  adminToken: z.string().min(1).optional(),
});
export type ClientConfigFile = z.infer<typeof ClientConfigFile>;

const TokensFile = z.object({ client: z.string(), admin: z.string(), agent: z.string() });

export function readClientConfig(path = configPath()): ClientConfigFile {
  if (!existsSync(path)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UsageError(
      `${path} is not valid JSON (${(error as Error).message}); fix or delete it`,
    );
  }
  const parsed = ClientConfigFile.safeParse(json);
  if (!parsed.success) {
    throw new UsageError(
      `${path}: ${parsed.error.issues[0]?.message ?? "invalid"}; fix or delete it`,
    );
  }
  return parsed.data;
}

/** Written by `labrun up` so that `labrun submit` needs no flags. Mode 0600: it holds tokens. */
export function writeClientConfig(config: ClientConfigFile, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

function readTokens(dataDir: string): z.infer<typeof TokensFile> | undefined {
  try {
    return TokensFile.parse(JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8")));
  } catch {
    return undefined;
  }
}

/**
 * Server and token for a command: flags > env (LABRUN_SERVER, LABRUN_TOKEN or
 * LABRUN_ADMIN_TOKEN) > the config file > a local coordinator's tokens.json.
 */
export function resolveConnection(
  flags: { server?: string | undefined; token?: string | undefined },
  role: "client" | "admin",
  env = process.env,
): { server: string; token: string } {
  const file = readClientConfig(configPath(env));
  const given =
    flags.server ?? env.LABRUN_SERVER ?? file.server ?? `http://${DEFAULT_HOST}:${DEFAULT_PORT}`;
  const parsed = serverFlag().safeParse(given);
  if (!parsed.success) throw new UsageError(parsed.error.issues[0]?.message ?? "bad --server");
  const server = parsed.data;
  const envToken = role === "admin" ? env.LABRUN_ADMIN_TOKEN : env.LABRUN_TOKEN;
  const fileToken = role === "admin" ? file.adminToken : file.token;
  const token = flags.token ?? envToken ?? fileToken ?? readTokens(defaultDataDir(env))?.[role];
  if (!token) {
    throw new UsageError(
      `no ${role} token: pass --token, set ${role === "admin" ? "LABRUN_ADMIN_TOKEN" : "LABRUN_TOKEN"}, or run \`labrun up\` once to write ${configPath(env)}`,
    );
  }
  return { server, token };
}
