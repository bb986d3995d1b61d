import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { labrun } from "./helpers/cli.js";
import { startTestCluster, type TestCluster } from "./helpers/cluster.js";

// Real programs (DESIGN.md §7): folders with packages, TypeScript, bundled by
// `labrun submit` / `labrun map` and run on real Docker; what the client
// refuses before anything is sent; `files` + `entry` sent over HTTP as is.

const FIXTURES = fileURLToPath(new URL("./fixtures/programs/", import.meta.url));
const fixture = (path: string) => join(FIXTURES, path);

let cluster: TestCluster;
let env: Record<string, string>;
let dir: string;

/** A coordinator stand-in that counts every request: the refusals must send none. */
let recorder: Server;
let recorded = 0;
let recorderEnv: Record<string, string>;

beforeAll(async () => {
  cluster = await startTestCluster({ agents: [2] });
  dir = mkdtempSync(join(tmpdir(), "labrun-programs-"));
  const isolated = {
    LABRUN_CONFIG: join(dir, "no-config.json"),
    LABRUN_DATA_DIR: join(dir, "no-data"),
    // The CLI's bundle cache, of this run alone.
    XDG_CACHE_HOME: join(dir, "cache"),
  };
  env = { LABRUN_SERVER: cluster.url, LABRUN_TOKEN: cluster.tokens.client, ...isolated };
  recorder = createServer((_request, response) => {
    recorded++;
    response.writeHead(500).end();
  });
  await new Promise<void>((resolve) => recorder.listen(0, "127.0.0.1", resolve));
  const address = recorder.address();
  const port = typeof address === "object" && address ? address.port : 0;
  recorderEnv = { LABRUN_SERVER: `http://127.0.0.1:${port}`, LABRUN_TOKEN: "t", ...isolated };
});
afterAll(async () => {
  await new Promise((resolve) => recorder?.close(resolve));
  await cluster?.close();
});

const oneLine = (stderr: string) => stderr.trim().split("\n");

describe.concurrent("labrun submit bundles a program with what it imports", () => {
  it("runs a TypeScript folder (package.json main) with a relative import, JSON and a package", async () => {
    const out = await labrun(
      ["submit", fixture("ts-project"), "--input", '{"values":[1,2,6]}'],
      env,
    );
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ model: "linear", mean: 3, scale: 3 });
  });

  it("maps a thrown error's stack to the .ts file and line; the message is unchanged", async () => {
    const entry = fixture("ts-project/src/main.ts");
    const out = await labrun(["submit", entry, "--input", '{"values":[1],"fail":true}'], env);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("RUNTIME_ERROR: the model did not converge\n");
    expect(out.stderr).toMatch(/at fail \(src\/lib\/fail\.ts:2:\d+\)/);
    expect(out.stderr).toMatch(/at main \(src\/main\.ts:12:\d+\)/);
  });

  it("runs CommonJS that requires a package and a sibling", async () => {
    const out = await labrun(["submit", fixture("cjs-project"), "--input", '"ada"'], env);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ greeting: "hello, ada", twice: 42 });
  });

  it("runs ESM that imports a CommonJS package, default and named", async () => {
    const out = await labrun(["submit", fixture("esm-cjs/main.mjs")], env);
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ start: 10, next: 11, again: 12 });
  });

  it("gives import.meta.url and __dirname the bundle's place in the job's folder, and runs a relative import()", async () => {
    const out = await labrun(["submit", fixture("meta/main.mjs")], env);
    expect(out.code).toBe(0);
    const result = JSON.parse(out.stdout);
    expect(result.url).toMatch(/^file:\/\/\/tmp\/labrun-job-[^/]+\/main\.mjs$/);
    expect(`file://${result.cjsDirname}/main.mjs`).toBe(result.url);
    expect(result.later).toBe("loaded later");
  });

  it("prints esbuild's warning for a computed require and still runs the program", async () => {
    const out = await labrun(["submit", fixture("dynamic/main.js")], env);
    expect(out.stderr).toContain(
      'labrun: warning: main.js:3: This call to "require" will not be bundled',
    );
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ double: 8, platform: "linux" });
  });

  it("sends a self-contained file as it is, and a bundle as files + entry", async () => {
    const plain = join(dir, "plain.js");
    writeFileSync(plain, 'const os = require("node:os"); exports.main = () => os.EOL.length;');
    const sent = JSON.parse((await labrun(["submit", plain, "--json"], env)).stdout);
    expect(sent).toMatchObject({ filename: "plain.js", outcome: { ok: true, result: 1 } });
    const bundled = JSON.parse(
      (await labrun(["submit", fixture("cjs-project"), "--input", '"x"', "--json"], env)).stdout,
    );
    expect(bundled).toMatchObject({ filename: "main.mjs", state: "succeeded" });
  });

  it("runs the project's own tsc with --typecheck, and stops on a type error", async () => {
    const ok = await labrun(
      ["submit", fixture("ts-project"), "--typecheck", "--input", '{"values":[2]}'],
      env,
    );
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ mean: 2 });
    // A copy inside this checkout, so tsc is found up the tree as the project's own.
    const scratch = join(FIXTURES, "..", "..", "..", "test-output");
    mkdirSync(scratch, { recursive: true });
    const copy = mkdtempSync(join(scratch, "typecheck-"));
    cpSync(fixture("ts-project"), copy, { recursive: true });
    const main = join(copy, "src", "main.ts");
    writeFileSync(main, `${readFileSync(main, "utf8")}\nexport const wrong: number = "text";\n`);
    const bad = await labrun(["submit", copy, "--typecheck"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error TS2322");
    expect(bad.stderr).toContain("--typecheck: tsc found type errors");
  });

  it("labrun map bundles the entry once and runs it over every input", async () => {
    const inputs = join(dir, "values.jsonl");
    writeFileSync(inputs, '{"values":[1,3]}\n{"values":[10]}\n');
    const out = await labrun(["map", fixture("ts-project/src/main.ts"), "--inputs", inputs], env);
    expect(out.code).toBe(0);
    const lines = out.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((line) => line.result.mean)).toEqual([2, 10]);
  });
});

describe.concurrent("labrun submit sends a Python entry's folder when it imports from it", () => {
  it("imports a sibling module and a package of its folder", async () => {
    const entry = fixture("py-project/main.py");
    const out = await labrun(["submit", entry, "--input", '{"values":[1,2,3]}', "--json"], env);
    expect(out.code, out.stderr).toBe(0);
    const job = JSON.parse(out.stdout);
    expect(job).toMatchObject({ runtime: "python", filename: "main.py" });
    expect(job.outcome.result).toEqual({ total: 60, json: "[1]" });
  });
});

describe.concurrent("labrun submit refuses before sending anything (exit 2, one line)", () => {
  const refused = async (args: string[]) => {
    const before = recorded;
    const out = await labrun(args, recorderEnv);
    expect(out.code).toBe(2);
    expect(oneLine(out.stderr).filter((line) => !line.includes("warning:"))).toHaveLength(1);
    expect(recorded - before).toBe(0);
    return out.stderr;
  };

  it("a native addon (.node) in the import graph, naming it and who imports it", async () => {
    const stderr = await refused(["submit", fixture("native/main.js")]);
    expect(stderr).toContain(
      "node_modules/fake-native/index.js:1: ./build/Release/addon.node is a native addon (.node)",
    );
  });

  it("a package that builds a native addon (binding.gyp), even loaded by a computed name", async () => {
    const stderr = await refused(["map", fixture("native-gyp/main.js"), "--inputs", "-"]);
    expect(stderr).toContain("gyp-thing is a native addon package (binding.gyp)");
  });

  it("an import that cannot be resolved, naming the module", async () => {
    const stderr = await refused(["submit", fixture("unresolvable/main.ts")]);
    expect(stderr).toContain('main.ts:1: Could not resolve "not-installed-anywhere"');
  });

  it("a bundle over the program size cap, with its size and largest module", async () => {
    const project = mkdtempSync(join(tmpdir(), "labrun-big-"));
    writeFileSync(
      join(project, "main.js"),
      'const big = require("./big.js"); exports.main = () => big.length;',
    );
    writeFileSync(join(project, "big.js"), `module.exports = "${"x".repeat(9 * 1024 * 1024)}";`);
    const stderr = await refused(["submit", join(project, "main.js")]);
    expect(stderr).toMatch(
      /its bundle is \d+ bytes, more than the 8388608 a program may be \(largest module: big\.js/,
    );
  });
});

describe.concurrent("files + entry over HTTP (no bundling)", () => {
  it("runs plain JavaScript files in their folders, the program's package.json included", async () => {
    const { id } = await cluster.client.submit({
      files: [
        { path: "package.json", content: '{"type":"module"}' },
        {
          path: "main.js",
          content: 'import { add } from "./lib/math.js";\nexport const main = (n) => add(n, 1);',
        },
        { path: "lib/math.js", content: "export const add = (a, b) => a + b;" },
      ],
      entry: "main.js",
      input: 41,
    });
    const job = await cluster.client.wait(id, { timeoutMs: 60_000 });
    expect(job.outcome).toMatchObject({ ok: true, result: 42 });
    expect(job.filename).toBe("main.js");
  });

  it("writes the files read-only, in folders of their own, inside the job's folder", async () => {
    const { id } = await cluster.client.submit({
      files: [
        {
          path: "deep/er/main.cjs",
          content: `const fs = require("node:fs");
exports.main = () => {
  const self = fs.lstatSync(__filename);
  let overwritten = false;
  try { fs.writeFileSync(__dirname + "/data.txt", "changed"); overwritten = true; } catch {}
  return { mode: (self.mode & 0o777).toString(8), data: fs.readFileSync(__dirname + "/data.txt", "utf8"), overwritten, dir: __dirname };
};`,
        },
        { path: "deep/er/data.txt", content: "original" },
      ],
      entry: "deep/er/main.cjs",
    });
    const job = await cluster.client.wait(id, { timeoutMs: 60_000 });
    const outcome = job.outcome;
    expect(outcome?.ok, JSON.stringify(outcome)).toBe(true);
    const result = outcome?.ok ? (outcome.result as Record<string, unknown>) : {};
    expect(result).toMatchObject({ mode: "400", data: "original", overwritten: false });
    expect(String(result.dir)).toMatch(/^\/tmp\/labrun-job-[^/]+\/deep\/er$/);
  });
});
