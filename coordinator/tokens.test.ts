import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashToken, loadOrCreateTokens, sameToken } from "./tokens.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir() {
  const dir = mkdtempSync(join(tmpdir(), "labrun-tokens-"));
  dirs.push(dir);
  return dir;
}

describe("tokens.json", () => {
  it("is created on first start with mode 0600 in a 0700 data dir", () => {
    const dataDir = join(tempDir(), "data");
    const { tokens, path, created } = loadOrCreateTokens(dataDir);
    expect(created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual(tokens);
    expect(tokens.client).toMatch(/^lrc_[A-Za-z0-9_-]{43}$/);
    expect(tokens.admin).toMatch(/^lra_/);
    expect(tokens.agent).toMatch(/^lrj_/);
  });

  it("is read back on later starts", () => {
    const dataDir = tempDir();
    const first = loadOrCreateTokens(dataDir);
    const second = loadOrCreateTokens(dataDir);
    expect(second.created).toBe(false);
    expect(second.tokens).toEqual(first.tokens);
  });

  it("says which file is broken instead of starting with it", () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, "tokens.json"), '{"client": "short"}');
    expect(() => loadOrCreateTokens(dataDir)).toThrow(/tokens\.json is not a labrun tokens file/);
  });
});

describe("token checks", () => {
  it("compares in constant time over digests, any lengths", () => {
    expect(sameToken("lrc_abc", "lrc_abc")).toBe(true);
    expect(sameToken("lrc_abc", "lrc_abd")).toBe(false);
    expect(sameToken("lrc_abc", "lrc_abc_longer")).toBe(false);
  });

  it("hashes per-agent tokens with sha256", () => {
    expect(hashToken("x")).toBe("2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
  });
});
