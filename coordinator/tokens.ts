import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/** The coordinator's fixed tokens: client (users), admin, agent (joins new agents). */
export const Tokens = z
  .object({
    client: z.string().min(16),
    admin: z.string().min(16),
    agent: z.string().min(16),
  })
  .refine(
    (tokens) => new Set([tokens.client, tokens.admin, tokens.agent]).size === 3,
    "the client, admin and agent tokens must differ",
  );
export type Tokens = z.infer<typeof Tokens>;

/** A fresh secret: prefix (names its kind in logs and configs) + 256 random bits. */
export const newToken = (prefix: string) => `${prefix}_${randomBytes(32).toString("base64url")}`;

/** What every user's token starts with (tokens of `labrun users add`). */
export const USER_TOKEN_PREFIX = "lru_";

/** sha256 of a token: what fixed tokens are compared by (auth.ts digests each request's once). */
export const tokenDigest = (token: string) => createHash("sha256").update(token).digest();

/** Per-agent and per-user tokens are stored only as this hash (hex sha256). */
export const hashToken = (token: string) => tokenDigest(token).toString("hex");

/**
 * Compares two secrets in constant time. Comparing sha256 digests makes the
 * inputs the same length, so not even the length of the secret leaks.
 */
export function sameToken(a: string, b: string): boolean {
  return timingSafeEqual(tokenDigest(a), tokenDigest(b));
}

/**
 * `<dataDir>/tokens.json` (`{"client", "admin", "agent"}`): created with fresh
 * tokens on first start (file 0600, a new data dir 0700), read back after.
 *
 * @example
 * const { tokens, path, created } = loadOrCreateTokens("/var/lib/labrun");
 */
export function loadOrCreateTokens(dataDir: string): {
  tokens: Tokens;
  path: string;
  created: boolean;
} {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, "tokens.json");
  const tokens = freshTokens();
  try {
    // "wx": never overwrite tokens that exist (a second coordinator racing us).
    writeFileSync(path, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    return { tokens, path, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return { tokens: readTokens(path), path, created: false };
}

/** What `settleTokens` did with `<dataDir>/tokens.json`. */
export interface SettledTokens {
  /** The tokens the store holds: the ones this coordinator uses. */
  tokens: Tokens;
  path: string;
  /** `created`: there was no file; `rewritten`: the file held other tokens than the store. */
  file: "kept" | "created" | "rewritten";
  /** The store took this coordinator's fresh tokens (none were held anywhere before). */
  minted: boolean;
}

/**
 * The fixed tokens of a coordinator whose store is shared (DESIGN.md §4):
 * it offers its candidates (its tokens.json's, else fresh ones) to
 * `claim` (Store.claimTokens: the first offer wins) and uses what the store
 * holds. tokens.json is then made to hold the same (0600), so `labrun` on
 * this machine and a reader of the file see the tokens that work.
 *
 * @example
 * const { tokens, file } = await settleTokens(dataDir, (offered) => store.claimTokens(offered));
 */
export async function settleTokens(
  dataDir: string,
  claim: (offered: Tokens) => Promise<Tokens>,
): Promise<SettledTokens> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, "tokens.json");
  const existing = readTokensIfAny(path);
  const offered = existing ?? freshTokens();
  const tokens = await claim(offered);
  const minted = existing === undefined && sameTokens(tokens, offered);
  if (existing && sameTokens(existing, tokens)) return { tokens, path, file: "kept", minted };
  writeTokensFile(path, tokens);
  return { tokens, path, file: existing ? "rewritten" : "created", minted };
}

function freshTokens(): Tokens {
  return { client: newToken("lrc"), admin: newToken("lra"), agent: newToken("lrj") };
}

const sameTokens = (a: Tokens, b: Tokens) =>
  a.client === b.client && a.admin === b.admin && a.agent === b.agent;

function readTokensIfAny(path: string): Tokens | undefined {
  try {
    return readTokens(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Replaces the file at once (a temp file renamed over it): a reader, or a
 * coordinator on the same data dir, never sees half a file.
 */
function writeTokensFile(path: string, tokens: Tokens): void {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(temp, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  renameSync(temp, path);
}

function readTokens(path: string): Tokens {
  let parsed: z.ZodSafeParseResult<Tokens>;
  // Read apart from the parse: a missing file (ENOENT) is not a broken one.
  const text = readFileSync(path, "utf8");
  try {
    parsed = Tokens.safeParse(JSON.parse(text));
  } catch (error) {
    throw new Error(`${path} is not valid JSON (${(error as Error).message}); fix or delete it`);
  }
  if (!parsed.success) {
    throw new Error(`${path} is not a labrun tokens file: ${z.prettifyError(parsed.error)}`);
  }
  // Tightens a file someone loosened; the tokens are as good as passwords.
  chmodSync(path, 0o600);
  return parsed.data;
}
