import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram } from "./bundle.js";

// The bundle cache against real esbuild builds: a bundle is reused only
// while nothing it was made from (or could resolve to) has changed.

const saved = process.env.XDG_CACHE_HOME;
let cacheHome: string;
beforeAll(() => {
  cacheHome = mkdtempSync(join(tmpdir(), "labrun-cache-"));
  process.env.XDG_CACHE_HOME = cacheHome;
});
afterAll(() => {
  if (saved === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = saved;
});

function project() {
  const dir = mkdtempSync(join(tmpdir(), "labrun-cached-"));
  writeFileSync(join(dir, "package.json"), '{"name":"cached","private":true}');
  writeFileSync(join(dir, "main.js"), 'const { v } = require("./util"); exports.main = () => v;');
  writeFileSync(join(dir, "util.js"), 'exports.v = "first";');
  return dir;
}
const text = async (entry: string) => (await bundleProgram(entry)).files?.[0]?.content ?? "";
const bundles = () => {
  try {
    return readdirSync(join(cacheHome, "labrun", "bundles"));
  } catch {
    return [];
  }
};

describe("the bundle cache", () => {
  it("reuses a bundle while its inputs are unchanged, and bundles again when one changes", async () => {
    const dir = project();
    const before = new Set(bundles());
    expect(await text(join(dir, "main.js"))).toContain('"first"');
    const kept = bundles().filter((name) => !before.has(name));
    expect(kept).toHaveLength(1);
    // Marks the kept bundle: a submit that takes it from the cache shows the mark.
    const file = join(cacheHome, "labrun", "bundles", kept[0] ?? "");
    // The same length: the file's contents are kept by their byte counts.
    writeFileSync(file, readFileSync(file, "utf8").replace('"first"', '"CACHE"'));
    expect(await text(join(dir, "main.js"))).toContain('"CACHE"');
    writeFileSync(join(dir, "util.js"), 'exports.v = "second, longer";');
    expect(await text(join(dir, "main.js"))).toContain('"second, longer"');
  });

  it("bundles again when a new file changes what an import resolves to", async () => {
    const dir = project();
    expect(await text(join(dir, "main.js"))).toContain('"first"');
    // esbuild tries ./util.ts before ./util.js.
    writeFileSync(join(dir, "util.ts"), 'export const v: string = "from ts";');
    expect(await text(join(dir, "main.js"))).toContain('"from ts"');
  });

  it("bundles again when a package's package.json changes its main", async () => {
    const dir = project();
    const pkg = join(dir, "node_modules", "local-pkg");
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, "package.json"), '{"name":"local-pkg","main":"a.js"}');
    writeFileSync(join(pkg, "a.js"), 'exports.v = "a";');
    writeFileSync(join(pkg, "b.js"), 'exports.v = "b";');
    writeFileSync(join(dir, "main.js"), 'exports.main = () => require("local-pkg").v;');
    expect(await text(join(dir, "main.js"))).toContain('"a"');
    writeFileSync(join(pkg, "package.json"), '{"name":"local-pkg","main":"b.js" }');
    expect(await text(join(dir, "main.js"))).toContain('"b"');
  });
});
