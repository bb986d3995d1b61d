import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";

const RUNNER = fileURLToPath(new URL("./runner.js", import.meta.url));
/** The runner's TMPDIR: in the container /tmp is a throwaway tmpfs, here it is cleaned up. */
const SCRATCH = mkdtempSync(join(tmpdir(), "labrun-runner-test-"));
afterAll(() => rmSync(SCRATCH, { recursive: true, force: true }));

interface Envelope {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; detail?: string };
}

interface Run {
  /** The envelope between the two nonces, or null when stdout holds no frame. */
  envelope: Envelope | null;
  /** Everything on stdout outside the frame: the program's own output. */
  outside: string;
  stderr: string;
  exitCode: number | null;
  ms: number;
  /** When stdout first held the whole frame (ms from the start), or null. */
  framedMs: number | null;
  nonce: string;
}

/** Finds the `\n<nonce><json><nonce>\n` frame the way the agent does: by the nonce. */
function parseFrame(stdout: string, nonce: string): Pick<Run, "envelope" | "outside"> {
  const open = stdout.indexOf(nonce);
  const close = open === -1 ? -1 : stdout.indexOf(nonce, open + nonce.length);
  if (close === -1) return { envelope: null, outside: stdout };
  return {
    envelope: JSON.parse(stdout.slice(open + nonce.length, close)) as Envelope,
    outside: stdout.slice(0, open) + stdout.slice(close + nonce.length),
  };
}

interface RunOptions {
  filename?: string;
  /** Omitted: the request has no input field. */
  input?: unknown;
  /** Sent on stdin instead of a well-formed request. */
  raw?: string;
  /** A program of several files, sent as the agent sends them: raw bytes after the request line. */
  files?: Array<{ path: string; content: string }>;
  /** Bytes left off the end of what is sent. */
  cut?: number;
  /** The runner's TMPDIR, when the test must not share SCRATCH with the runners beside it. */
  tmpDir?: string;
  /** The request's lingerMs (the agent's), omitted when undefined. */
  lingerMs?: number;
}

/** The request line, and for `files` their bytes after it (RunnerRequest in protocol/jobs.ts). */
function requestOf(source: string, options: RunOptions, nonce: string): string | Buffer {
  if (options.raw !== undefined) return options.raw;
  const files = options.files;
  const line = JSON.stringify({
    source,
    filename: options.filename ?? "main.js",
    ...(files === undefined
      ? {}
      : { files: files.map(({ path, content }) => ({ path, bytes: Buffer.byteLength(content) })) }),
    ...("input" in options ? { input: options.input } : {}),
    nonce,
    ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }),
  });
  const all = Buffer.from(`${line}\n${files?.map((file) => file.content).join("") ?? ""}`);
  return all.subarray(0, all.length - (options.cut ?? 0));
}

/** Runs runner.js on the host's node with one request on stdin. */
function runRunner(source: string, options: RunOptions = {}): Promise<Run> {
  const nonce = randomBytes(16).toString("hex");
  const request = requestOf(source, options, nonce);
  const started = Date.now();
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [RUNNER], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, TMPDIR: options.tmpDir ?? SCRATCH },
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let framedMs: number | null = null;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout.push(chunk);
      if (framedMs === null && parseFrame(Buffer.concat(stdout).toString("utf8"), nonce).envelope) {
        framedMs = Date.now() - started;
      }
    });
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", reject);
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.on("close", (exitCode) => {
      clearTimeout(killer);
      resolve({
        ...parseFrame(Buffer.concat(stdout).toString("utf8"), nonce),
        stderr: Buffer.concat(stderr).toString("utf8"),
        exitCode,
        ms: Date.now() - started,
        framedMs,
        nonce,
      });
    });
    child.stdin.end(request);
  });
}

async function resultOf(source: string, options?: RunOptions): Promise<unknown> {
  const run = await runRunner(source, options);
  expect(run.envelope, run.stderr).not.toBeNull();
  expect(run.envelope?.ok, JSON.stringify(run.envelope)).toBe(true);
  expect(run.exitCode).toBe(0);
  return run.envelope?.result;
}

async function errorOf(source: string, options?: RunOptions) {
  const run = await runRunner(source, options);
  expect(run.envelope, run.stderr).not.toBeNull();
  expect(run.envelope?.ok, JSON.stringify(run.envelope)).toBe(false);
  expect(run.exitCode).toBe(0);
  return run.envelope?.error ?? { code: "", message: "" };
}

async function expectBadFormat(source: string, options?: RunOptions): Promise<string> {
  const error = await errorOf(source, options);
  expect(error.code).toBe("BAD_PROGRAM_FORMAT");
  expect(error.message).toBe("Bad program format");
  expect(error.detail).toBeTruthy();
  return error.detail ?? "";
}

describe.concurrent("runner.js: results", () => {
  it("returns main's result for a hello-world program", async () => {
    expect(await resultOf("exports.main = () => 'hello, world';")).toBe("hello, world");
  });

  it("passes the job's input to main", async () => {
    const source = "exports.main = (input) => ({ sum: input.a + input.b });";
    expect(await resultOf(source, { input: { a: 2, b: 3 } })).toEqual({ sum: 5 });
  });

  it("passes null when the request has no input", async () => {
    const source = "exports.main = function (input) { return [input, arguments.length]; };";
    expect(await resultOf(source)).toEqual([null, 1]);
  });

  it("awaits an async main", async () => {
    const source =
      "exports.main = async (n) => { await new Promise((r) => setTimeout(r, 20)); return n * 2; };";
    expect(await resultOf(source, { input: 21 })).toBe(42);
  });

  it("follows a thenable main returns, as await would", async () => {
    expect(await resultOf("exports.main = () => ({ then(resolve) { resolve(7); } });")).toBe(7);
  });

  it("runs a CommonJS main exported as module.exports itself", async () => {
    expect(await resultOf("module.exports = (x) => x + 1;", { input: 1 })).toBe(2);
  });

  it("calls main with the exports object as this", async () => {
    const source = "module.exports = { base: 10, main(x) { return this.base + x; } };";
    expect(await resultOf(source, { input: 5 })).toBe(15);
  });

  it("runs a .cjs program", async () => {
    const source = "module.exports = { main: () => typeof require };";
    expect(await resultOf(source, { filename: "prog.cjs" })).toBe("function");
  });

  it("runs export function main from a .mjs file", async () => {
    const source = "export function main(x) { return x * 3; }";
    expect(await resultOf(source, { filename: "prog.mjs", input: 2 })).toBe(6);
  });

  it("runs export default { main } from a .mjs file", async () => {
    const source = 'export default { main: (x) => "default " + x };';
    expect(await resultOf(source, { filename: "prog.mjs", input: "obj" })).toBe("default obj");
  });

  it("runs an ESM default function", async () => {
    const source = "export default async () => 'default fn';";
    expect(await resultOf(source, { filename: "prog.mjs" })).toBe("default fn");
  });

  it("runs a .js file written with ESM import and export", async () => {
    const source = "import { join } from 'node:path';\nexport const main = () => join('a', 'b');";
    expect(await resultOf(source)).toBe("a/b");
  });

  it("runs a .js file with top-level await", async () => {
    const source = "const v = await Promise.resolve(5);\nexport default { main: () => v };";
    expect(await resultOf(source)).toBe(5);
  });

  it("honours toJSON in the result", async () => {
    const source = `exports.main = () => ({
      when: new Date(0),
      point: { x: 1, toJSON() { return [this.x, 2]; } },
    });`;
    expect(await resultOf(source)).toEqual({ when: "1970-01-01T00:00:00.000Z", point: [1, 2] });
  });

  it("turns an undefined result into null", async () => {
    expect(await resultOf("exports.main = () => {};")).toBeNull();
  });
});

describe.concurrent("runner.js: Bad program format", () => {
  it("reports a program without main", async () => {
    const detail = await expectBadFormat("exports.run = () => 1;");
    expect(detail).toContain("no callable main");
  });

  it("reports a main that is not a function", async () => {
    const detail = await expectBadFormat("exports.main = 42;");
    expect(detail).toContain("main is a number");
  });

  it("reports an empty module", async () => {
    await expectBadFormat("");
  });

  it("reports an ES module without a callable main", async () => {
    const detail = await expectBadFormat("export const helper = 1;", { filename: "prog.mjs" });
    expect(detail).toContain("no callable main");
  });

  it("reports a syntax error with the file and line", async () => {
    const detail = await expectBadFormat("exports.main = () => {\n  return (1 + ;\n};");
    expect(detail).toContain("main.js:2");
    expect(detail).toContain("SyntaxError");
    expect(detail).not.toContain("labrun-job-");
  });

  it("reports a syntax error in an ES module", async () => {
    const detail = await expectBadFormat("export function main( {", { filename: "prog.mjs" });
    expect(detail).toContain("SyntaxError");
  });

  it("reports ESM syntax in a .cjs file", async () => {
    await expectBadFormat("export const main = () => 1;", { filename: "prog.cjs" });
  });

  it("reports an await outside an async function in a .js file", async () => {
    const detail = await expectBadFormat("exports.main = () => { await 1; };");
    expect(detail).toContain("await is only valid");
  });

  it("reports an import of a name the module does not export", async () => {
    const source = "import { nothingHere } from 'node:fs';\nexport const main = () => 1;";
    const detail = await expectBadFormat(source, { filename: "prog.mjs" });
    expect(detail).toContain("nothingHere");
  });
});

describe.concurrent("runner.js: failures", () => {
  it("reports a thrown Error as RUNTIME_ERROR with its message and stack", async () => {
    const error = await errorOf("exports.main = () => { throw new TypeError('nope'); };");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "nope" });
    expect(error.detail).toContain("TypeError: nope");
    expect(error.detail).toContain("main.js:1");
  });

  it("reports a rejected promise as RUNTIME_ERROR with its message", async () => {
    const error = await errorOf("exports.main = async () => { throw new RangeError('later'); };");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "later" });
  });

  it("reports a thrown non-Error as its String()", async () => {
    const error = await errorOf("exports.main = () => { throw 'just a string'; };");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "just a string" });
  });

  it("reports a top-level throw as RUNTIME_ERROR", async () => {
    const error = await errorOf("throw new Error('at load'); exports.main = () => 1;");
    expect(error).toMatchObject({ code: "RUNTIME_ERROR", message: "at load" });
  });

  it("reports a SyntaxError thrown while loading (not parsing) as RUNTIME_ERROR", async () => {
    for (const filename of ["main.js", "main.mjs"]) {
      const exported = filename.endsWith(".mjs") ? "export const main" : "exports.main";
      const source = `JSON.parse("{"); ${exported} = () => 1;`;
      const error = await errorOf(source, { filename });
      expect(error.code, filename).toBe("RUNTIME_ERROR");
    }
  });

  it.each([
    [
      "a cyclic result",
      "exports.main = () => { const a = {}; a.self = a; return a; };",
      "circular",
    ],
    ["a BigInt result", "exports.main = () => 10n;", "BigInt"],
    [
      "a result whose toJSON throws",
      "exports.main = () => ({ toJSON() { throw new Error('no json'); } });",
      "no json",
    ],
    ["a function result", "exports.main = () => () => 1;", "function"],
    ["a Symbol result", "exports.main = () => Symbol('s');", "symbol"],
  ])("reports %s as RESULT_NOT_JSON", async (_what, source, mentions) => {
    const error = await errorOf(source);
    expect(error.code).toBe("RESULT_NOT_JSON");
    expect(error.message).toContain(mentions);
  });

  it("reports process.exit(0) inside main as RUNTIME_ERROR", async () => {
    const error = await errorOf("exports.main = () => { process.exit(0); };");
    expect(error).toEqual({
      code: "RUNTIME_ERROR",
      message: "the program called process.exit(0) before main returned",
    });
  });

  it("reports process.exit at the top level as RUNTIME_ERROR", async () => {
    const error = await errorOf("process.exit(3); exports.main = () => 1;");
    expect(error.message).toContain("process.exit(3)");
  });

  it("reports an unhandled rejection before main settles", async () => {
    const source = `exports.main = () => {
      Promise.reject(new Error("stray"));
      return new Promise((resolve) => setTimeout(resolve, 500));
    };`;
    expect(await errorOf(source)).toMatchObject({ code: "RUNTIME_ERROR", message: "stray" });
  });

  it("reports an uncaught exception in a callback before main settles", async () => {
    const source = `exports.main = () => {
      setTimeout(() => { throw new Error("from a timer"); }, 10);
      return new Promise((resolve) => setTimeout(resolve, 500));
    };`;
    expect(await errorOf(source)).toMatchObject({ code: "RUNTIME_ERROR", message: "from a timer" });
  });

  it("reports a promise that can never settle", async () => {
    const error = await errorOf("exports.main = () => new Promise(() => {});");
    expect(error.code).toBe("RUNTIME_ERROR");
    expect(error.message).toContain("never settles");
  });
});

describe.concurrent("runner.js: the job ends when main settles", () => {
  it("exits promptly although the program left a setInterval behind", async () => {
    const run = await runRunner(
      "exports.main = () => { setInterval(() => console.log('tick'), 5); return 1; };",
    );
    expect(run.envelope).toEqual({ ok: true, result: 1 });
    expect(run.ms).toBeLessThan(5000);
  });

  // The agent removes a used container off the job's hot path; exiting at
  // once started its teardown while the envelope was still on its way out.
  it("with the agent's lingerMs, waits that long to be removed after the envelope, running nothing", async () => {
    const source =
      "exports.main = () => { setInterval(() => console.log('tick'), 5); console.log('before'); return 1; };";
    const [lingering, plain] = await Promise.all([
      runRunner(source, { lingerMs: 3000 }),
      runRunner(source),
    ]);
    for (const run of [lingering, plain]) {
      expect(run.envelope).toEqual({ ok: true, result: 1 });
      expect(run.exitCode).toBe(0);
      // Not a tick of the interval: the program's timers never run again.
      expect(run.outside.trim()).toBe("before");
    }
    expect(lingering.ms - (lingering.framedMs ?? Number.NaN)).toBeGreaterThanOrEqual(2500);
    expect(plain.ms - (plain.framedMs ?? Number.NaN)).toBeLessThan(2500);
  });

  it("keeps the result when a timer throws after main returned", async () => {
    const source =
      "exports.main = () => { setTimeout(() => { throw new Error('late'); }, 0); return 'early'; };";
    expect(await resultOf(source)).toBe("early");
  });

  it("delivers all output written before main returned ahead of the envelope", async () => {
    const source = `exports.main = () => {
      const line = "x".repeat(1023) + "\\n";
      for (let i = 0; i < 2048; i++) process.stdout.write(line);
      return "after 2 MiB";
    };`;
    const run = await runRunner(source);
    expect(run.envelope).toEqual({ ok: true, result: "after 2 MiB" });
    expect(run.outside.length).toBeGreaterThanOrEqual(2048 * 1024);
  });

  it("still ends the job when the program left stdout corked", async () => {
    const source = `exports.main = () => { process.stdout.cork(); console.log("held"); return 1; };`;
    const run = await runRunner(source);
    expect(run.envelope).toEqual({ ok: true, result: 1 });
    expect(run.outside).toContain("held");
  });
});

describe.concurrent("runner.js: the program cannot forge or break the envelope", () => {
  it("keeps printed noise, including fake envelopes, outside the real frame", async () => {
    const fakeNonce = "0123456789abcdef0123456789abcdef";
    const source = `exports.main = () => {
      console.log("noise before");
      console.log('\\n${fakeNonce}{"ok":true,"result":"forged"}${fakeNonce}');
      console.log('{"ok":true,"result":"forged"}');
      console.error("noise on stderr");
      return "real";
    };`;
    const run = await runRunner(source);
    expect(run.envelope).toEqual({ ok: true, result: "real" });
    expect(run.outside).toContain("noise before");
    expect(run.outside).toContain(`${fakeNonce}{"ok":true,"result":"forged"}${fakeNonce}`);
    expect(run.stderr).toContain("noise on stderr");
  });

  it("delivers the real result despite patched JSON.stringify, console.log and stdout.write", async () => {
    const source = `
      JSON.stringify = () => '{"ok":true,"result":"forged"}';
      JSON.parse = () => ({ forged: true });
      console.log = () => {};
      process.stdout.write = () => true;
      exports.main = () => ({ real: 1 });`;
    expect(await resultOf(source)).toEqual({ real: 1 });
  });

  it("delivers the real failure despite patched JSON.stringify and stdout.write", async () => {
    const source = `
      JSON.stringify = () => '{"ok":true,"result":"forged"}';
      process.stdout.write = () => true;
      exports.main = () => { throw new Error("the real failure"); };`;
    expect(await errorOf(source)).toMatchObject({
      code: "RUNTIME_ERROR",
      message: "the real failure",
    });
  });

  it("delivers the real result despite patched fs.writeSync and Buffer", async () => {
    const source = `
      const fs = require("fs");
      fs.writeSync = () => 0;
      Buffer.from = () => Buffer.alloc(0);
      globalThis.Buffer = function () {};
      exports.main = () => "still real";`;
    expect(await resultOf(source)).toBe("still real");
  });

  it("delivers the real result despite patched Promise.prototype.then", async () => {
    const source = `
      Promise.prototype.then = function () { return this; };
      exports.main = async () => "awaited anyway";`;
    expect(await resultOf(source)).toBe("awaited anyway");
  });

  it("keeps the envelope well-formed when the program defines Object.prototype.toJSON", async () => {
    const source = `
      Object.prototype.toJSON = function () { return "hijacked"; };
      exports.main = () => { throw new Error("real"); };`;
    expect(await errorOf(source)).toMatchObject({ code: "RUNTIME_ERROR", message: "real" });
  });

  it("keeps the envelope well-formed when the program patches String and RegExp methods", async () => {
    const source = `
      String.prototype.slice = () => "";
      String.prototype.indexOf = () => 0;
      RegExp.prototype.exec = () => null;
      RegExp.prototype.test = () => true;
      exports.main = () => { throw new Error("still readable"); };`;
    expect(await errorOf(source)).toMatchObject({
      code: "RUNTIME_ERROR",
      message: "still readable",
    });
  });

  it("ends the job although the program replaced process.exit and reallyExit", async () => {
    const source = `
      process.exit = () => {};
      process.reallyExit = () => {};
      exports.main = () => { setInterval(() => {}, 1000); return "done"; };`;
    const run = await runRunner(source);
    expect(run.envelope).toEqual({ ok: true, result: "done" });
    expect(run.ms).toBeLessThan(5000);
  });

  // The runner rehearses a job on programs of its own before the job's arrives.
  it("leaves nothing of its rehearsal where the program looks: no folder, no cached module", async () => {
    const source = `
      const fs = require("fs"), os = require("os");
      exports.main = () => ({
        folders: fs.readdirSync(os.tmpdir()).filter((name) => name.startsWith("labrun-rehearsal-")),
        cached: Object.keys(require.cache).filter((id) => id.includes("labrun-rehearsal-")),
      });`;
    const run = await runRunner(source, { tmpDir: mkdtempSync(join(SCRATCH, "alone-")) });
    expect(run.envelope).toEqual({ ok: true, result: { folders: [], cached: [] } });
  });

  it("keeps the nonce out of the program's reach", async () => {
    const source = `
      const fs = require("fs");
      exports.main = () => {
        const seen = [];
        const look = (value) => { try { seen.push(typeof value === "string" ? value : JSON.stringify(value)); } catch {} };
        for (const key of Reflect.ownKeys(globalThis)) { try { look(String(key)); look(globalThis[key]); } catch {} }
        look(process.argv); look(process.execArgv); look(process.env); look(process.title);
        look([RegExp.input, RegExp.lastMatch, RegExp.leftContext, RegExp.rightContext, RegExp.$1, RegExp.$2]);
        look(fs.readFileSync(0, "utf8"));
        for (const file of ["/proc/self/cmdline", "/proc/self/environ"]) { try { look(fs.readFileSync(file, "latin1")); } catch {} }
        for (const file of fs.readdirSync(__dirname)) look(file + ":" + fs.readFileSync(__dirname + "/" + file, "utf8"));
        for (const [id, mod] of Object.entries(require.cache)) { look(id); look(Object.keys(mod.exports ?? {})); }
        look(require.main && require.main.exports);
        return seen.join("\\n");
      };`;
    const run = await runRunner(source);
    expect(run.envelope?.ok, JSON.stringify(run.envelope)).toBe(true);
    const found = String(run.envelope?.result);
    // The scan really read the program's own directory.
    expect(found).toContain("main.js:");
    expect(found).not.toContain(run.nonce);
  });
});

describe.concurrent("runner.js: malformed requests", () => {
  it("answers a request that is not JSON but carries a nonce with SANDBOX_ERROR", async () => {
    const nonce = "b".repeat(32);
    const run = await runRunner("", {
      raw: `{"source": "exports.main=()=>1", "nonce": "${nonce}"`,
    });
    const { envelope } = parseFrame(run.outside, nonce);
    expect(envelope?.error?.code).toBe("SANDBOX_ERROR");
    expect(envelope?.error?.message).toContain("not a JSON object");
    expect(run.exitCode).toBe(0);
  });

  it("answers a request with a bad filename with SANDBOX_ERROR", async () => {
    const nonce = "c".repeat(32);
    const raw = JSON.stringify({ source: "exports.main=()=>1", filename: "../x.js", nonce });
    const run = await runRunner("", { raw });
    const { envelope } = parseFrame(run.outside, nonce);
    expect(envelope?.error?.code).toBe("SANDBOX_ERROR");
    expect(envelope?.error?.message).toContain("filename");
  });

  it("answers a request without source with SANDBOX_ERROR", async () => {
    const nonce = "d".repeat(32);
    const run = await runRunner("", { raw: JSON.stringify({ filename: "main.js", nonce }) });
    expect(parseFrame(run.outside, nonce).envelope?.error?.code).toBe("SANDBOX_ERROR");
  });

  it("exits with code 2 and a message on stderr when no nonce can be found", async () => {
    const run = await runRunner("", { raw: "garbage" });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("no valid nonce");
    expect(run.outside).toBe("");
  });
});

describe.concurrent("runner.js: programs of several files and their source maps", () => {
  it("runs files sent as raw bytes after the request line, multi-byte text included", async () => {
    const files = [
      { path: "lib/words.mjs", content: 'export const words = ["héllo", "wörld ✓", "日本"];\n' },
      {
        path: "main.mjs",
        content: 'import { words } from "./lib/words.mjs";\nexport const main = () => words;\n',
      },
    ];
    expect(await resultOf("", { filename: "main.mjs", files })).toEqual([
      "héllo",
      "wörld ✓",
      "日本",
    ]);
  });

  it("answers files cut short with SANDBOX_ERROR", async () => {
    const files = [{ path: "main.mjs", content: "export const main = () => 1;\n" }];
    const error = await errorOf("", { filename: "main.mjs", files, cut: 5 });
    expect(error.code).toBe("SANDBOX_ERROR");
    expect(error.message).toMatch(/the input ended before the files' \d+ bytes/);
  });

  /** `src/fail.ts` compiled as `labrun submit` would: the bundle, and its map beside it. */
  async function compiled() {
    const ts = [
      "interface Options { loud: boolean }",
      "",
      "export function fail(options: Options): never {",
      '  throw new Error(options.loud ? "LOUD" : "quiet");',
      "}",
      "export const main = (input: Options) => fail(input);",
    ].join("\n");
    const { code, map } = await transform(ts, {
      loader: "ts",
      format: "esm",
      sourcemap: "external",
      sourcefile: "src/fail.ts",
    });
    return { code, map };
  }

  it("maps a stack through a map file of its own, in the detail and where the program prints it", async () => {
    const { code, map } = await compiled();
    const files = [
      {
        path: "main.mjs",
        content: `${code.replace("throw new Error", "console.log(new Error('printed').stack); throw new Error")}//# sourceMappingURL=main.mjs.map\n`,
      },
      { path: "main.mjs.map", content: map },
    ];
    const run = await runRunner("", { filename: "main.mjs", files, input: { loud: true } });
    expect(run.envelope?.error?.message).toBe("LOUD");
    expect(run.envelope?.error?.detail).toMatch(
      /^Error: LOUD\n {4}at fail \(src\/fail\.ts:4:\d+\)/,
    );
    expect(run.envelope?.error?.detail).toMatch(/\n {4}at main \(src\/fail\.ts:6:\d+\)/);
    expect(run.outside).toMatch(/Error: printed\n {4}at fail \(\/.*\/src\/fail\.ts:4:\d+\)/);
  });

  it("maps a stack through an inline map, in a program of one file", async () => {
    const { code, map } = await compiled();
    const inline = Buffer.from(map).toString("base64");
    const source = `${code}//# sourceMappingURL=data:application/json;base64,${inline}\n`;
    const error = await errorOf(source, { filename: "main.mjs", input: { loud: false } });
    expect(error.message).toBe("quiet");
    expect(error.detail).toMatch(/^Error: quiet\n {4}at fail \(src\/fail\.ts:4:9\)/);
  });

  it("leaves a stack as it is when its map is not among the files", async () => {
    const { code } = await compiled();
    const files = [{ path: "main.mjs", content: `${code}//# sourceMappingURL=gone.map\n` }];
    const error = await errorOf("", { filename: "main.mjs", files, input: { loud: true } });
    expect(error.detail).toMatch(/^Error: LOUD\n {4}at fail \(main\.mjs:2:9\)/);
  });
});
