import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
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

/** Per-agent and per-user tokens are stored only as this hash (hex sha256). */
export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/**
 * Compares two secrets in constant time. Comparing sha256 digests makes the
 * inputs the same length, so not even the length of the secret leaks.
 */
export function sameToken(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
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
  const tokens: Tokens = {
    client: newToken("lrc"),
    admin: newToken("lra"),
    agent: newToken("lrj"),
  };
  try {
    // "wx": never overwrite tokens that exist (a second coordinator racing us).
    writeFileSync(path, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: "wx" });
    return { tokens, path, created: true };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  return { tokens: readTokens(path), path, created: false };
}

function readTokens(path: string): Tokens {
  let parsed: z.ZodSafeParseResult<Tokens>;
  try {
    parsed = Tokens.safeParse(JSON.parse(readFileSync(path, "utf8")));
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
