import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { needsBundle, readProgram } from "./program.js";

// Every bundle is made afresh here (client/bundle-cache.test.ts tests the cache).
process.env.LABRUN_BUNDLE_CACHE = "0";

const FIXTURES = fileURLToPath(new URL("../test/fixtures/programs/", import.meta.url));

describe("needsBundle", () => {
  it("leaves a file alone that names only Node's built-ins", () => {
    const source = `const fs = require("node:fs");\nconst os = require('os');\nimport("node:path");\nexports.main = () => 1; // important`;
    expect(needsBundle("prog.js", source)).toBe(false);
    expect(
      needsBundle(
        "prog.mjs",
        'import { readFileSync } from "node:fs";\nexport const main = () => 1;',
      ),
    ).toBe(false);
  });

  it("bundles TypeScript always, and JavaScript that names any other module", () => {
    expect(needsBundle("prog.ts", "export const main = () => 1;")).toBe(true);
    expect(needsBundle("prog.js", 'const z = require("zod");')).toBe(true);
    expect(needsBundle("prog.mjs", 'import "./setup.mjs";')).toBe(true);
    expect(needsBundle("prog.mjs", 'export { x } from "./x.mjs";')).toBe(true);
    expect(needsBundle("prog.cjs", 'const m = import("./later.cjs");')).toBe(true);
  });
});

describe("readProgram", () => {
  it("sends a self-contained file as source, with its own name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrun-program-"));
    writeFileSync(join(dir, "plain.js"), "exports.main = () => 1;");
    const { fields, runtime } = await readProgram(join(dir, "plain.js"), {});
    expect(runtime).toBe("node");
    expect(fields).toEqual({ source: "exports.main = () => 1;", filename: "plain.js" });
  });

  it("sends a Python entry with the .py files of its folder when it imports one of them", async () => {
    const { fields, runtime } = await readProgram(join(FIXTURES, "py-project/main.py"), {});
    expect(runtime).toBe("python");
    expect(fields.entry).toBe("main.py");
    expect(fields.files?.map((file) => file.path).sort()).toEqual([
      "helper.py",
      "lib/__init__.py",
      "lib/deep.py",
      "main.py",
    ]);
  });

  it("sends a Python entry that imports only the standard library alone", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labrun-program-"));
    writeFileSync(join(dir, "json_user.py"), "import json, os.path\n\ndef main():\n    return 1\n");
    writeFileSync(join(dir, "other.py"), "x = 1\n");
    const { fields } = await readProgram(join(dir, "json_user.py"), {});
    expect(fields).toEqual({
      source: expect.stringContaining("import json"),
      filename: "json_user.py",
    });
  });

  it("runs a folder's package.json main", async () => {
    const { fields } = await readProgram(join(FIXTURES, "ts-project"), {});
    expect(fields.entry).toBe("src/main.mjs");
    // The bundle names its map, a file of its own beside it.
    expect(fields.files?.map((file) => file.path)).toEqual(["src/main.mjs", "src/main.mjs.map"]);
    expect(fields.files?.[0]?.content).toMatch(/\/\/# sourceMappingURL=main\.mjs\.map\n$/);
    expect(JSON.parse(fields.files?.[1]?.content ?? "").sources).toContain("lib/fail.ts");
  });
});
