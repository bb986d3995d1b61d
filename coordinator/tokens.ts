import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/** The coordinator's fixed tokens: client (users), admin, agent (join). */
export const Tokens = z.object({
  client: z.string().min(16),
  admin: z.string().min(16),
  agent: z.string().min(16),
});
export type Tokens = z.infer<typeof Tokens>;

export const newToken = (prefix: string) => `${prefix}_${randomBytes(24).toString("base64url")}`;

/** Per-agent tokens are stored only as this hash. */
export const hashToken = (token: string) => createHash("sha256").update(token).digest("hex");

/** Compares two secrets in constant time (over fixed-length digests). */
export function sameToken(a: string, b: string): boolean {
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * `<dataDir>/tokens.json`, created on first start (mode 0600, dir 0700) and
 * read back on later starts.
 */
export function loadOrCreateTokens(dataDir: string): {
  tokens: Tokens;
  path: string;
  created: boolean;
} {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, "tokens.json");
  if (existsSync(path)) {
    const tokens = Tokens.parse(JSON.parse(readFileSync(path, "utf8")));
    chmodSync(path, 0o600);
    return { tokens, path, created: false };
  }
  const tokens: Tokens = {
    client: newToken("lrc"),
    admin: newToken("lra"),
    agent: newToken("lrj"),
  };
  writeFileSync(path, `${JSON.stringify(tokens, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  return { tokens, path, created: true };
}
