import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hashToken, loadOrCreateTokens, sameToken, settleTokens, type Tokens } from "./tokens.js";

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

describe("settleTokens (the store holds the tokens)", () => {
  const held: Tokens = {
    client: "lrc_held-client-0123456789",
    admin: "lra_held-admin-0123456789",
    agent: "lrj_held-agent-0123456789",
  };
  /** A store's claimTokens that holds `stored`, or takes the first offer when it holds none. */
  const storeHolding = (stored?: Tokens) => {
    const offers: Tokens[] = [];
    let row = stored;
    const claim = async (offered: Tokens) => {
      offers.push(offered);
      row ??= offered;
      return row;
    };
    return { claim, offers };
  };
  const fileOf = (dataDir: string) =>
    JSON.parse(readFileSync(join(dataDir, "tokens.json"), "utf8")) as unknown;

  it("first start on an empty store: fresh tokens, stored and written to a 0600 file", async () => {
    const dataDir = join(tempDir(), "data");
    const store = storeHolding();
    const settled = await settleTokens(dataDir, store.claim);
    expect(settled).toMatchObject({ file: "created", minted: true });
    expect(settled.tokens.client).toMatch(/^lrc_[A-Za-z0-9_-]{43}$/);
    expect(store.offers).toEqual([settled.tokens]);
    expect(fileOf(dataDir)).toEqual(settled.tokens);
    expect(statSync(settled.path).mode & 0o777).toBe(0o600);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it("a new data dir on a store that holds tokens: the store's are used and written", async () => {
    const dataDir = tempDir();
    const settled = await settleTokens(dataDir, storeHolding(held).claim);
    expect(settled).toMatchObject({ tokens: held, file: "created", minted: false });
    expect(fileOf(dataDir)).toEqual(held);
  });

  it("an install from before: its file's tokens are offered, adopted, and the file kept", async () => {
    const dataDir = tempDir();
    const before = loadOrCreateTokens(dataDir).tokens;
    const store = storeHolding();
    const settled = await settleTokens(dataDir, store.claim);
    expect(store.offers).toEqual([before]);
    expect(settled).toMatchObject({ tokens: before, file: "kept", minted: false });
    expect(fileOf(dataDir)).toEqual(before);
  });

  it("a file that disagrees with the store is rewritten with the store's tokens, still 0600", async () => {
    const dataDir = tempDir();
    const { path } = loadOrCreateTokens(dataDir);
    chmodSync(path, 0o644);
    const settled = await settleTokens(dataDir, storeHolding(held).claim);
    expect(settled).toMatchObject({ tokens: held, file: "rewritten" });
    expect(fileOf(dataDir)).toEqual(held);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dataDir)).toEqual(["tokens.json"]);
  });

  it("a broken file stops the start instead of being replaced", async () => {
    const dataDir = tempDir();
    writeFileSync(join(dataDir, "tokens.json"), "{not json");
    await expect(settleTokens(dataDir, storeHolding(held).claim)).rejects.toThrow(
      /tokens\.json is not valid JSON/,
    );
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
